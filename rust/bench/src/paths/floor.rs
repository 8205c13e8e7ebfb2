//! The floor: one TPM2_HMAC command built by hand, on an open socket and on a new TCP connection
//! per command (as tpm2-tss's swtpm TCTI sends it).

use crate::measure::time_loop;
use crate::raw;
use crate::report::{Group, Kind, RowId};

impl crate::Bench {
    /// The command bytes on an open socket, and on a new connection each.
    pub(crate) fn floor_rows(&mut self, runs: usize) {
        let g = Group::Challenge;
        let floor = (|| {
            let mut raw = raw::RawTpm::connect(self.swtpm.port(), crate::PEER_HANDLE, &self.message)?;
            let digest = raw.hmac()?;
            self.check("the raw TPM2_HMAC", &hex::encode(digest))?;
            let samples = time_loop(runs, || {
                raw.hmac()?;
                Ok(())
            })?;
            Ok((samples, Some(vec![swtpm_fixture::commands::HMAC])))
        })();
        self.push(g, Kind::Floor, RowId::Floor, floor);
        let port = self.swtpm.port();
        let floor_tcti = (|| {
            let command = raw::hmac_command(crate::PEER_HANDLE, &self.message);
            let digest = raw::on_new_connection(port, &command)?;
            self.check("the raw TPM2_HMAC", &hex::encode(digest))?;
            let samples = time_loop(runs, || {
                raw::on_new_connection(port, &command)?;
                Ok(())
            })?;
            Ok((samples, Some(vec![swtpm_fixture::commands::HMAC])))
        })();
        self.push(g, Kind::Info, RowId::FloorTcti, floor_tcti);
    }
}
