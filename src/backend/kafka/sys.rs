//! The librdkafka admin calls the safe `rdkafka` API lacks: IncrementalAlterConfigs
//! and the ACL calls. This is the only unsafe code in sluice.
//!
//! Each call runs on a private queue of the admin client's handle and blocks
//! until its result event arrives (run it on a blocking thread). Every object
//! librdkafka hands out is freed by a guard ([`Guard`] for one, [`Owned`]
//! for an array), on every path, early errors included.

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

use crate::resource::{AclBinding, AclOperation, AclResource};

pub type Admin = Arc<AdminClient<DefaultClientContext>>;

/// A config change under IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    /// Back to the broker's default.
    Delete,
}

/// Per resource: `Ok`, or the broker's error message.
pub type ItemResult = Result<(), String>;

/// One topic's config changes for IncrementalAlterConfigs.
pub type TopicConfigOps = (String, Vec<(String, ConfigOp)>);

fn text(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: librdkafka returns NUL-terminated strings that live as long
        // as the object they belong to, which the caller still holds.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("`{s}` contains a NUL byte"))
}

/// Frees a librdkafka object when dropped.
struct Guard<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching constructor and is
            // freed exactly once, here.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// librdkafka objects handed to one request as an array, each freed when
/// the array drops, on every path (an early error included).
struct Owned<T> {
    items: Vec<*mut T>,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Owned<T> {
    fn new(destroy: unsafe extern "C" fn(*mut T)) -> Self {
        Owned {
            items: Vec::new(),
            destroy,
        }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        for item in self.items.drain(..).filter(|i| !i.is_null()) {
            // SAFETY: each item came from its constructor and is freed
            // exactly once, here; librdkafka copied what it keeps.
            unsafe { (self.destroy)(item) }
        }
    }
}

/// Error of an `rd_kafka_error_t`, consuming it.
fn take_error(err: *mut rd::rd_kafka_error_t) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: a non-null error object from librdkafka, destroyed once here.
    let message = text(unsafe { rd::rd_kafka_error_string(err) });
    unsafe { rd::rd_kafka_error_destroy(err) };
    Some(message)
}

/// Error of a borrowed `rd_kafka_error_t` (owned by a result event).
fn borrowed_error(err: *const rd::rd_kafka_error_t) -> ItemResult {
    if err.is_null() {
        Ok(())
    } else {
        // SAFETY: the error belongs to a live event the caller holds.
        Err(text(unsafe { rd::rd_kafka_error_string(err) }))
    }
}

/// Runs one admin request: `start` issues it on a fresh queue with options of
/// `op`; the result event of type `expected` is handed to `read`.
fn request<R>(
    admin: &Admin,
    op: rd::rd_kafka_admin_op_t,
    expected: i32,
    timeout: Duration,
    start: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
    read: impl FnOnce(*mut rd::rd_kafka_event_t) -> R,
) -> Result<R, String> {
    let rk = admin.inner().native_ptr();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` stays valid while `admin` (held by the caller) lives; every
    // object created here is freed by its guard after the event is read.
    unsafe {
        let queue = Guard(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Guard(
            rd::rd_kafka_AdminOptions_new(rk, op),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as c_char; 512];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        start(rk, options.0, queue.0);
        let event = Guard(
            rd::rd_kafka_queue_poll(queue.0, ms.saturating_add(1000)),
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null() {
            return Err(format!("no answer within {}s", timeout.as_secs()));
        }
        if rd::rd_kafka_event_error(event.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(text(rd::rd_kafka_event_error_string(event.0)));
        }
        if rd::rd_kafka_event_type(event.0) != expected {
            return Err("unexpected answer from librdkafka".into());
        }
        Ok(read(event.0))
    }
}

/// One config resource per topic, with its changes added.
fn config_resources(
    topics: &[TopicConfigOps],
) -> Result<Owned<rd::rd_kafka_ConfigResource_t>, String> {
    let mut resources = Owned::new(rd::rd_kafka_ConfigResource_destroy);
    for (topic, ops) in topics {
        let name = cstring(topic)?;
        // SAFETY: a valid C string, copied; the resource is freed with `resources`.
        let resource = unsafe {
            rd::rd_kafka_ConfigResource_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                name.as_ptr(),
            )
        };
        resources.items.push(resource);
        for (key, op) in ops {
            let key = cstring(key)?;
            let (op_type, value) = match op {
                ConfigOp::Set(v) => (
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    Some(cstring(v)?),
                ),
                ConfigOp::Delete => (
                    rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                    None,
                ),
            };
            let value_ptr = value.as_ref().map_or(ptr::null(), |v| v.as_ptr());
            // SAFETY: valid resource and C strings; librdkafka copies them.
            let err = unsafe {
                rd::rd_kafka_ConfigResource_add_incremental_config(
                    resource,
                    key.as_ptr(),
                    op_type,
                    value_ptr,
                )
            };
            if let Some(message) = take_error(err) {
                return Err(message);
            }
        }
    }
    Ok(resources)
}

/// Sets or resets topic configs with IncrementalAlterConfigs, one resource
/// per topic, in one request. Returns each topic's result, in order.
pub fn incremental_alter_configs(
    admin: &Admin,
    topics: &[TopicConfigOps],
    timeout: Duration,
) -> Result<Vec<ItemResult>, String> {
    let mut resources = config_resources(topics)?;
    let count = resources.items.len();
    request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        rd::RD_KAFKA_EVENT_INCREMENTALALTERCONFIGS_RESULT,
        timeout,
        // SAFETY: librdkafka copies the resources; `resources` frees them.
        |rk, options, queue| unsafe {
            rd::rd_kafka_IncrementalAlterConfigs(
                rk,
                resources.items.as_mut_ptr(),
                count,
                options,
                queue,
            )
        },
        |event| {
            let mut by_name = std::collections::HashMap::new();
            // SAFETY: the result and its resources live as long as `event`.
            unsafe {
                let result = rd::rd_kafka_event_IncrementalAlterConfigs_result(event);
                let mut n = 0;
                let items = rd::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n);
                for i in 0..n {
                    let r = *items.add(i);
                    let outcome = if rd::rd_kafka_ConfigResource_error(r)
                        == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    {
                        Ok(())
                    } else {
                        Err(text(rd::rd_kafka_ConfigResource_error_string(r)))
                    };
                    by_name.insert(text(rd::rd_kafka_ConfigResource_name(r)), outcome);
                }
            }
            topics
                .iter()
                .map(|(n, _)| {
                    by_name
                        .remove(n)
                        .unwrap_or_else(|| Err("no result from the broker".into()))
                })
                .collect()
        },
    )
}

fn restype(r: AclResource) -> rd::rd_kafka_ResourceType_t {
    match r {
        AclResource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
        AclResource::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
    }
}

fn operation(o: AclOperation) -> rd::rd_kafka_AclOperation_t {
    use rd::rd_kafka_AclOperation_t as O;
    match o {
        AclOperation::All => O::RD_KAFKA_ACL_OPERATION_ALL,
        AclOperation::Read => O::RD_KAFKA_ACL_OPERATION_READ,
        AclOperation::Write => O::RD_KAFKA_ACL_OPERATION_WRITE,
        AclOperation::Describe => O::RD_KAFKA_ACL_OPERATION_DESCRIBE,
    }
}

/// Builds `Allow` bindings for any host on literal names (or filters that
/// match exactly those bindings).
fn bindings(
    acls: &[AclBinding],
    new: unsafe extern "C" fn(
        rd::rd_kafka_ResourceType_t,
        *const c_char,
        rd::rd_kafka_ResourcePatternType_t,
        *const c_char,
        *const c_char,
        rd::rd_kafka_AclOperation_t,
        rd::rd_kafka_AclPermissionType_t,
        *mut c_char,
        usize,
    ) -> *mut rd::rd_kafka_AclBinding_t,
) -> Result<Owned<rd::rd_kafka_AclBinding_t>, String> {
    let mut out = Owned::new(rd::rd_kafka_AclBinding_destroy);
    for acl in acls {
        let name = cstring(&acl.resource_name)?;
        let principal = cstring(&acl.principal)?;
        let host = cstring("*")?;
        let mut errstr = [0 as c_char; 512];
        // SAFETY: valid C strings and buffer; librdkafka copies the strings.
        let b = unsafe {
            new(
                restype(acl.resource),
                name.as_ptr(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                principal.as_ptr(),
                host.as_ptr(),
                operation(acl.operation),
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if b.is_null() {
            return Err(text(errstr.as_ptr()));
        }
        out.items.push(b);
    }
    Ok(out)
}

/// Creates ACL bindings in one request; one result per binding.
pub fn create_acls(
    admin: &Admin,
    acls: &[AclBinding],
    timeout: Duration,
) -> Result<Vec<ItemResult>, String> {
    let mut new = bindings(acls, rd::rd_kafka_AclBinding_new)?;
    let count = new.items.len();
    request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        rd::RD_KAFKA_EVENT_CREATEACLS_RESULT,
        timeout,
        // SAFETY: librdkafka copies the bindings; `new` frees them.
        |rk, options, queue| unsafe {
            rd::rd_kafka_CreateAcls(rk, new.items.as_mut_ptr(), count, options, queue)
        },
        |event| {
            // SAFETY: the results live as long as `event`.
            unsafe {
                let result = rd::rd_kafka_event_CreateAcls_result(event);
                let mut n = 0;
                let items = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
                (0..n)
                    .map(|i| borrowed_error(rd::rd_kafka_acl_result_error(*items.add(i))))
                    .collect::<Vec<_>>()
            }
        },
    )
}

/// Deletes exactly these bindings, one filter each, in one request.
pub fn delete_acls(
    admin: &Admin,
    acls: &[AclBinding],
    timeout: Duration,
) -> Result<Vec<ItemResult>, String> {
    let mut filters = bindings(acls, rd::rd_kafka_AclBindingFilter_new)?;
    let count = filters.items.len();
    request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
        rd::RD_KAFKA_EVENT_DELETEACLS_RESULT,
        timeout,
        // SAFETY: librdkafka copies the filters; `filters` frees them.
        |rk, options, queue| unsafe {
            rd::rd_kafka_DeleteAcls(rk, filters.items.as_mut_ptr(), count, options, queue)
        },
        |event| {
            // SAFETY: the responses live as long as `event`.
            unsafe {
                let result = rd::rd_kafka_event_DeleteAcls_result(event);
                let mut n = 0;
                let items = rd::rd_kafka_DeleteAcls_result_responses(result, &mut n);
                (0..n)
                    .map(|i| {
                        borrowed_error(rd::rd_kafka_DeleteAcls_result_response_error(*items.add(i)))
                    })
                    .collect::<Vec<_>>()
            }
        },
    )
}

/// Every binding on the cluster that has the shape sluice creates (`Allow`,
/// any host, a literal topic or group name); others are not sluice's.
pub fn describe_acls(admin: &Admin, timeout: Duration) -> Result<Vec<AclBinding>, String> {
    let mut errstr = [0 as c_char; 512];
    // SAFETY: a match-anything filter; null strings mean "any".
    let filter = unsafe {
        rd::rd_kafka_AclBindingFilter_new(
            rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
            ptr::null(),
            rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
            ptr::null(),
            ptr::null(),
            rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
            rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if filter.is_null() {
        return Err(text(errstr.as_ptr()));
    }
    let filter = Guard(filter, rd::rd_kafka_AclBinding_destroy);
    request(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
        rd::RD_KAFKA_EVENT_DESCRIBEACLS_RESULT,
        timeout,
        // SAFETY: librdkafka copies the filter; the guard frees it.
        |rk, options, queue| unsafe { rd::rd_kafka_DescribeAcls(rk, filter.0, options, queue) },
        |event| {
            let mut out = Vec::new();
            // SAFETY: the bindings live as long as `event`.
            unsafe {
                let result = rd::rd_kafka_event_DescribeAcls_result(event);
                let mut n = 0;
                let items = rd::rd_kafka_DescribeAcls_result_acls(result, &mut n);
                for i in 0..n {
                    let b = *items.add(i);
                    if let Some(binding) = ours(b) {
                        out.push(binding);
                    }
                }
            }
            out
        },
    )
}

/// A described binding, when it has the shape sluice manages.
///
/// # Safety
/// `b` must point to a binding owned by a live event.
unsafe fn ours(b: *const rd::rd_kafka_AclBinding_t) -> Option<AclBinding> {
    use rd::rd_kafka_AclOperation_t as O;
    use rd::rd_kafka_ResourceType_t as R;
    // SAFETY: as the caller guarantees.
    unsafe {
        let resource = match rd::rd_kafka_AclBinding_restype(b) {
            R::RD_KAFKA_RESOURCE_TOPIC => AclResource::Topic,
            R::RD_KAFKA_RESOURCE_GROUP => AclResource::Group,
            _ => return None,
        };
        let operation = match rd::rd_kafka_AclBinding_operation(b) {
            O::RD_KAFKA_ACL_OPERATION_ALL => AclOperation::All,
            O::RD_KAFKA_ACL_OPERATION_READ => AclOperation::Read,
            O::RD_KAFKA_ACL_OPERATION_WRITE => AclOperation::Write,
            O::RD_KAFKA_ACL_OPERATION_DESCRIBE => AclOperation::Describe,
            _ => return None,
        };
        let literal = rd::rd_kafka_AclBinding_resource_pattern_type(b)
            == rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL;
        let allow = matches!(
            rd::rd_kafka_AclBinding_permission_type(b),
            rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW
        );
        if !literal || !allow || text(rd::rd_kafka_AclBinding_host(b)) != "*" {
            return None;
        }
        Some(AclBinding {
            principal: text(rd::rd_kafka_AclBinding_principal(b)),
            resource,
            resource_name: text(rd::rd_kafka_AclBinding_name(b)),
            operation,
        })
    }
}
