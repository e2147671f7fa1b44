//! ACL bindings: read with DescribeAcls, created and deleted in batches
//! through the librdkafka calls in [`super::sys`].

use std::collections::BTreeSet;

use super::sys;
use super::{BatchResult, KafkaBackend, read_error};
use crate::backend::BackendError;
use crate::plan::{Api, Change, LiveResource, LiveState};
use crate::resource::{AclBinding, Address, Value};

impl KafkaBackend {
    /// The wanted bindings that exist.
    pub(super) async fn read_acls(
        &self,
        acls: &BTreeSet<&Address>,
        live: &mut LiveState,
    ) -> Result<(), BackendError> {
        let timeout = self.timeout;
        if live.unsupported.contains(&Api::DescribeAcls) {
            return Err(read_error("not supported by this broker (DescribeAcls)"));
        }
        self.sent("DescribeAcls");
        let bindings = self
            .blocking(move |admin| sys::describe_acls(&admin, timeout))
            .await
            .map_err(read_error)?
            .map_err(|e| read_error(format!("DescribeAcls failed: {e}")))?;
        for b in bindings {
            let address = b.address();
            if acls.contains(&address) {
                live.resources.insert(
                    address,
                    LiveResource {
                        value: Value::Acl(b),
                        fingerprint: "present".into(),
                    },
                );
            }
        }
        Ok(())
    }

    pub(super) async fn acls(&self, changes: &[&Change], api: Api) -> BatchResult {
        let timeout = self.timeout;
        self.require(api)?;
        self.require(Api::DeleteAcls)?;
        let bindings: Vec<AclBinding> = changes
            .iter()
            .map(|c| match (&c.desired, &c.live) {
                (Some(Value::Acl(b)), _) | (None, Some(Value::Acl(b))) => Ok(b.clone()),
                _ => Err(BackendError::Rejected(format!(
                    "{} has no ACL binding",
                    c.address
                ))),
            })
            .collect::<Result<_, _>>()?;
        self.sent(&api.to_string());
        let answer = self
            .blocking(move |admin| match api {
                Api::CreateAcls => sys::create_acls(&admin, &bindings, timeout),
                _ => sys::delete_acls(&admin, &bindings, timeout),
            })
            .await
            .map_err(BackendError::Rejected)?
            .map_err(|e| BackendError::Rejected(format!("{api} failed: {e}")))?;
        Ok(changes
            .iter()
            .enumerate()
            .map(|(i, c)| match answer.get(i) {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(BackendError::Rejected(format!("{}: {e}", c.address))),
                None => Err(BackendError::Rejected(format!(
                    "{}: no answer from the broker",
                    c.address
                ))),
            })
            .collect())
    }
}
