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

/*
 * keepassxc-tpm-make-db: creates a KDBX 4 database protected by a password plus a hardware key
 * (a TPM key through the fork's driver), using KeePassXC's own code (keepassx_core). keepassxc-cli
 * 2.7.x's db-create cannot add a challenge-response key; the GUI can, this tool does it for scripts.
 *
 * Usage: keepassxc-tpm-make-db [--light-kdf] FILE.kdbx SLOT:SERIAL|none [ENTRY-TITLE...]
 * The password is read from the first line of standard input; "none" makes a password-only database
 * with the same KDF settings (for timing comparisons). --light-kdf sets Argon2id to 1 round of
 * 1 MiB, so that timing what a key adds is not lost in the KDF's own variation. Exit code 0 on
 * success.
 */

#include "cli/TpmPinPrompt.h"
#include "core/Database.h"
#include "core/Entry.h"
#include "core/Group.h"
#include "core/Metadata.h"
#include "crypto/Crypto.h"
#include "crypto/kdf/Argon2Kdf.h"
#include "keys/ChallengeResponseKey.h"
#include "keys/CompositeKey.h"
#include "keys/PasswordKey.h"
#include "keys/drivers/YubiKey.h"
#include "keys/drivers/YubiKeyInterfaceTPM.h"

#include <QCoreApplication>
#include <QTextStream>

#include <cstdio>

int main(int argc, char** argv)
{
    // Opening or saving a database waits for the key task in the pool, which waits for the challenge there
    YubiKeyInterfaceTPM::prepareProcess(2);
    QCoreApplication app(argc, argv);
    QTextStream err(stderr);
    auto args = app.arguments();
    const bool lightKdf = args.size() > 1 && args.at(1) == QStringLiteral("--light-kdf");
    if (lightKdf) {
        args.removeAt(1);
    }
    if (args.size() < 3) {
        err << "usage: keepassxc-tpm-make-db [--light-kdf] FILE.kdbx SLOT:SERIAL|none [ENTRY-TITLE...]  (password on "
               "stdin)\n";
        return 2;
    }

    const bool withHardwareKey = args.at(2) != QStringLiteral("none");
    const auto parts = args.at(2).split(':');
    bool slotOk = !withHardwareKey;
    bool serialOk = !withHardwareKey || parts.size() == 2;
    const int slot = withHardwareKey ? parts.at(0).toInt(&slotOk) : 0;
    const unsigned int serial = withHardwareKey && serialOk ? parts.at(1).toUInt(&serialOk, 10) : 0;
    if (!slotOk || !serialOk) {
        err << "keepassxc-tpm-make-db: the key must be given as SLOT:SERIAL, e.g. 1:2164261120\n";
        return 2;
    }

    QTextStream in(stdin);
    const QString password = in.readLine();
    if (password.isEmpty()) {
        err << "keepassxc-tpm-make-db: give the password on the first line of standard input\n";
        return 2;
    }

    if (!Crypto::init()) {
        err << "keepassxc-tpm-make-db: the crypto backend failed to initialise\n";
        return 1;
    }
    // A key with a PIN asks for it on the terminal, as keepassxc-cli does
    YubiKeyInterfaceTPM::instance()->setPinPrompt(TpmPinPrompt::askPin);
    YubiKey::instance()->findValidKeys();

    auto key = QSharedPointer<CompositeKey>::create();
    key->addKey(QSharedPointer<PasswordKey>::create(password));
    if (withHardwareKey) {
        key->addChallengeResponseKey(QSharedPointer<ChallengeResponseKey>::create(YubiKeySlot(serial, slot)));
    }

    auto db = QSharedPointer<Database>::create();
    // A database made in code defaults to AES-KDF (KDBX 3.1); Argon2 makes it KDBX 4 as the GUI does
    auto kdf = QSharedPointer<Argon2Kdf>::create(Argon2Kdf::Type::Argon2id);
    if (lightKdf) {
        kdf->setRounds(1);
        kdf->setMemory(1024);
        kdf->setParallelism(1);
    }
    db->setKdf(kdf);
    if (!db->setKey(key)) {
        err << "keepassxc-tpm-make-db: setting the key failed: " << db->keyError() << "\n";
        return 1;
    }
    db->metadata()->setName(QStringLiteral("TPM demo"));

    QStringList titles = args.mid(3);
    if (titles.isEmpty()) {
        titles << QStringLiteral("Example entry");
    }
    for (const auto& title : titles) {
        auto entry = new Entry();
        entry->setUuid(QUuid::createUuid());
        entry->setTitle(title);
        entry->setUsername(QStringLiteral("demo"));
        entry->setPassword(QStringLiteral("protected by a TPM key"));
        entry->setGroup(db->rootGroup());
    }

    QString error;
    if (!db->saveAs(args.at(1), Database::Atomic, {}, &error)) {
        err << "keepassxc-tpm-make-db: saving " << args.at(1) << " failed: " << error << "\n";
        return 1;
    }
    err << "keepassxc-tpm-make-db: wrote " << args.at(1) << " (KDBX 4, password"
        << (withHardwareKey ? QStringLiteral(" + hardware key %1:%2").arg(slot).arg(serial) : QString()) << ")\n";
    return 0;
}
