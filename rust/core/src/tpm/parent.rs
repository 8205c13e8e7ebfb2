//! The storage parent keys are created under (the `impl Tpm` of `parent`).

use crate::address::{PersistentHandle, SRK_HANDLE};
use crate::error::{Error, Result};
use crate::key::{persistent_handle, Object};
use crate::parent::{ecc_srk_template, Parent};
use crate::rc::{self, codes};
use tss_esapi::handles::ObjectHandle;
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::{Hierarchy, Provision};

use super::Tpm;

impl Tpm {
    /// The storage key to create keys under or to salt a session with. When `provisioning`,
    /// the SRK is checked to be a storage key, and the standard ECC SRK is persisted at
    /// 0x81000001 when that handle is empty (as systemd does), so later sessions need no
    /// CreatePrimary. On the challenge path nothing is checked or changed: a wrong object
    /// fails StartAuthSession, and the pinned name catches a different one.
    fn storage_parent(&mut self, provisioning: bool) -> Result<Parent> {
        let srk = PersistentHandle::new(SRK_HANDLE)?;
        let found = if provisioning {
            match self.object_at(srk) {
                Ok(Object::Other { storage: true, .. }) => Ok(true),
                // Something else sits at 0x81000001: leave it alone.
                Ok(_) => Ok(false),
                Err(Error::EmptyHandle { .. }) => return self.persist_srk(srk),
                Err(e) => Err(e),
            }
        } else {
            match self.resolve(srk) {
                Ok(_) => Ok(true),
                Err(Error::EmptyHandle { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        if found? {
            let object = self.resolve(srk)?;
            return Ok(Parent { handle: object.into(), transient: false });
        }
        self.transient_primary()
    }

    fn transient_primary(&mut self) -> Result<Parent> {
        let template = ecc_srk_template()?;
        let primary = self.with_password(|tpm| {
            tpm.run("creating the storage primary key", |ctx| {
                ctx.create_primary(Hierarchy::Owner, template.clone(), None, None, None, None)
            })
        })?;
        Ok(Parent { handle: primary.key_handle, transient: true })
    }

    fn persist_srk(&mut self, srk: PersistentHandle) -> Result<Parent> {
        let primary = self.transient_primary()?;
        let persisted = self.with_password(|tpm| {
            tpm.call(|ctx| {
                ctx.evict_control(
                    Provision::Owner,
                    primary.handle.into(),
                    Persistent::Persistent(persistent_handle(srk)?),
                )
            })
        });
        self.release_parent(primary);
        match persisted {
            Ok(object) => {
                self.keys.resolved(srk, object);
                Ok(Parent { handle: object.into(), transient: false })
            }
            // Another program persisted one at the same moment: use it if it is a storage key.
            Err((code, _)) if rc::tpm_code(code) == Some(codes::NV_DEFINED) => match self.object_at(srk)? {
                Object::Other { storage: true, .. } => {
                    let object = self.resolve(srk)?;
                    Ok(Parent { handle: object.into(), transient: false })
                }
                _ => self.transient_primary(),
            },
            Err((_, e)) => Err(rc::classify("persisting the SRK at 0x81000001", e, self.tcti.as_str())),
        }
    }

    /// Runs `f` with the storage parent ([`Tpm::storage_parent`]); a transient one is flushed when
    /// `f` returns, on every path: the parent lives as long as this call.
    pub(crate) fn with_parent<T>(
        &mut self,
        provisioning: bool,
        f: impl FnOnce(&mut Tpm, &Parent) -> Result<T>,
    ) -> Result<T> {
        let parent = self.storage_parent(provisioning)?;
        let result = f(self, &parent);
        self.release_parent(parent);
        result
    }

    fn release_parent(&mut self, parent: Parent) {
        if parent.transient {
            self.flush(ObjectHandle::from(parent.handle));
        }
    }
}
