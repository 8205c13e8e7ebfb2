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

#ifndef KEEPASSXC_TPMPINPROMPT_H
#define KEEPASSXC_TPMPINPROMPT_H

#include <QString>
#include <botan/secmem.h>

/**
 * keepassxc-cli's prompt for the PIN of a TPM key, installed with YubiKeyInterfaceTPM::setPinPrompt().
 */
namespace TpmPinPrompt
{
    bool askPin(const QString& keyName, Botan::secure_vector<char>& pin);
} // namespace TpmPinPrompt

#endif // KEEPASSXC_TPMPINPROMPT_H
