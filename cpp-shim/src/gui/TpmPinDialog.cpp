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

#include "TpmPinDialog.h"

#include <QApplication>
#include <QInputDialog>
#include <QThread>

namespace TpmPinDialog
{
    /**
     * Ask for the PIN of a TPM key in a dialog. Challenges run on a worker thread while the GUI thread
     * waits in an event loop, so the dialog is shown on the GUI thread and this thread waits for it.
     * The PIN goes from the dialog's text into a buffer that is wiped when it is freed.
     *
     * @return false when the user cancels or enters nothing
     */
    bool askPin(const QString& keyName, Botan::secure_vector<char>& pin)
    {
        auto app = qobject_cast<QApplication*>(QCoreApplication::instance());
        if (!app) {
            return false;
        }

        bool ok = false;
        auto ask = [&] {
            auto text = QInputDialog::getText(QApplication::activeWindow(),
                                              QObject::tr("TPM key PIN"),
                                              QObject::tr("Enter the PIN of the TPM key at %1:").arg(keyName),
                                              QLineEdit::Password,
                                              {},
                                              &ok);
            auto utf8 = text.toUtf8();
            pin.assign(utf8.constData(), utf8.constData() + utf8.size());
            utf8.fill('\0');
            text.fill(QChar(0));
        };
        if (QThread::currentThread() == app->thread()) {
            ask();
        } else {
            QMetaObject::invokeMethod(app, ask, Qt::BlockingQueuedConnection);
        }
        return ok && !pin.empty();
    }
} // namespace TpmPinDialog
