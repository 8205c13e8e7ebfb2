/*
 *  Copyright (C) 2026 keepassxc-tpm contributors
 *
 *  This program is free software: you can redistribute it and/or modify
 *  it under the terms of the GNU General Public License as published by
 *  the Free Software Foundation, either version 2 or (at your option)
 *  version 3 of the License.
 *
 *  This program is distributed in the hope that it will be useful,
 *  but WITHOUT ANY WARRANTY; without even the implied warranty of
 *  MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
 *  GNU General Public License for more details.
 *
 *  You should have received a copy of the GNU General Public License
 *  along with this program.  If not, see <http://www.gnu.org/licenses/>.
 */

#include "TpmPinPrompt.h"

#include "Utils.h"

#include <QObject>

#include <cerrno>
#include <cstring>

#ifdef Q_OS_UNIX
#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>
#endif

namespace
{
#ifdef Q_OS_UNIX
    // The terminal whose echo is off while a PIN is read, for the signal handler below
    volatile sig_atomic_t s_quietTerminal = -1;
    termios s_savedTerminal{};
    constexpr int TERMINATING_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    constexpr std::size_t SIGNAL_COUNT = sizeof(TERMINATING_SIGNALS) / sizeof(int);
    // What each signal did before the prompt (sa_handler SIG_IGN: left ignored)
    struct sigaction s_previousActions[SIGNAL_COUNT]{};

    /**
     * Ctrl-C (or a kill) at the PIN prompt: turn echo back on, then let the signal do what it did
     * before the prompt. Only async-signal-safe calls.
     */
    void restoreEchoAndDie(int signal)
    {
        if (s_quietTerminal >= 0) {
            ::tcsetattr(s_quietTerminal, TCSANOW, &s_savedTerminal);
        }
        for (std::size_t i = 0; i < SIGNAL_COUNT; ++i) {
            if (TERMINATING_SIGNALS[i] == signal) {
                ::sigaction(signal, &s_previousActions[i], nullptr);
            }
        }
        ::raise(signal);
    }
#endif

    /**
     * Read a line from the terminal without echo (keepassxc-cli); false when there is no terminal.
     * The PIN goes straight into a buffer that is wiped whenever it is freed or grows.
     */
    bool readPinFromTerminal(const QString& prompt, Botan::secure_vector<char>& pin)
    {
#ifdef Q_OS_UNIX
        const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            // The cause, before the driver says that no PIN was entered (cron, a service, no terminal)
            Utils::STDERR << QObject::tr("Cannot ask for the PIN of a TPM key: no terminal (%1).")
                                 .arg(QString::fromLocal8Bit(std::strerror(errno)))
                          << '\n';
            Utils::STDERR.flush();
            return false;
        }
        // Echo off before the prompt appears, so that nothing typed after it is shown
        termios saved{};
        const bool isTerminal = ::tcgetattr(fd, &saved) == 0;
        bool handled[SIGNAL_COUNT]{};
        if (isTerminal) {
            s_savedTerminal = saved;
            s_quietTerminal = fd;
            struct sigaction restore{};
            restore.sa_handler = restoreEchoAndDie;
            sigemptyset(&restore.sa_mask);
            for (std::size_t i = 0; i < SIGNAL_COUNT; ++i) {
                // A signal the process ignores (nohup, a background job) stays ignored
                ::sigaction(TERMINATING_SIGNALS[i], nullptr, &s_previousActions[i]);
                if (s_previousActions[i].sa_handler != SIG_IGN) {
                    handled[i] = ::sigaction(TERMINATING_SIGNALS[i], &restore, nullptr) == 0;
                }
            }
            termios quiet = saved;
            quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
            ::tcsetattr(fd, TCSAFLUSH, &quiet);
        }
        const auto promptUtf8 = prompt.toUtf8();
        ssize_t written = ::write(fd, promptUtf8.constData(), static_cast<size_t>(promptUtf8.size()));
        char c = 0;
        bool gotLine = false;
        pin.reserve(128);
        while (::read(fd, &c, 1) == 1) {
            if (c == '\n' || c == '\r') {
                gotLine = true;
                break;
            }
            pin.push_back(c);
        }
        c = 0;
        if (isTerminal) {
            ::tcsetattr(fd, TCSANOW, &saved);
            s_quietTerminal = -1;
            for (std::size_t i = 0; i < SIGNAL_COUNT; ++i) {
                if (handled[i]) {
                    ::sigaction(TERMINATING_SIGNALS[i], &s_previousActions[i], nullptr);
                }
            }
        }
        written = ::write(fd, "\n", 1);
        Q_UNUSED(written);
        ::close(fd);
        return gotLine && !pin.empty();
#else
        Q_UNUSED(prompt);
        Q_UNUSED(pin);
        return false;
#endif
    }

} // namespace

namespace TpmPinPrompt
{
    /**
     * Ask for the PIN of a TPM key on the terminal, echo off.
     *
     * @return false when there is no terminal, or nothing was entered
     */
    bool askPin(const QString& keyName, Botan::secure_vector<char>& pin)
    {
        return readPinFromTerminal(QObject::tr("PIN of the TPM key at %1: ").arg(keyName), pin);
    }
} // namespace TpmPinPrompt
