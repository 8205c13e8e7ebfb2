//! The measured paths, one module each, in the order the report lists them: the raw TPM2_HMAC
//! floor ([`floor`]), ours in-process and through the `tpm-hmac` CLI ([`ours`]), KeePassXC's path
//! through the bridge and the keepassxc-cli unlock ([`keepassxc`]), and the peers tpm2-tools and
//! tpm2-pytss ([`peers`]). Each module adds its methods to [`crate::Bench`]; the two group
//! methods here call them in the order of the rows.

mod floor;
mod keepassxc;
mod ours;
mod peers;

use crate::report::Group;
use crate::Res;

impl crate::Bench {
    /// The challenge group and the breakdown of its paths.
    pub(crate) fn challenge_rows(&mut self) -> Res<()> {
        let runs = self.opts.warm_runs;
        // The peers' key, the old-form click's and the key file, only while these rows run
        // (listing counts keys).
        self.provision_twin()?;
        self.provision_key_file()?;
        self.floor_rows(runs);
        self.warm_challenge_rows(runs);
        self.cli_challenge_rows();
        self.bridge_challenge_rows(runs);
        self.click_behind_resource_manager_row();
        self.tools_challenge_row();
        self.pytss_rows(Group::Challenge, "challenge")?;
        // Breakdown of our paths.
        self.open_rows(runs);
        self.tpm_hmac_start_row();
        self.bridge_start_row();
        self.tools_start_row();
        self.delete_twin()
    }

    /// The enumeration group with `n` HMAC keys stored.
    pub(crate) fn list_rows(&mut self, n: usize) -> Res<()> {
        let g = Group::List(n);
        let runs = self.opts.warm_runs / 4;
        self.ours_list_rows(g, n, runs);
        self.bridge_list_rows(g, runs);
        self.tools_list_row(g);
        self.pytss_rows(g, "list")
    }
}
