//! `bondy.cert_manager.rotate_all|rotate_listener`: reload the TLS certificate and key from
//! their files without a restart, like `SIGHUP`. Certificates are the router's, not a realm's:
//! only sessions of the admin realm may rotate them. Junction has one TLS listener, which
//! Bondy's listener names call `wamp_tls`.

use junction_wire::Value;

use super::{Admin, Args};
use crate::error::Error;

/// The one TLS listener, by Bondy's name.
const LISTENER: &str = "wamp_tls";

/// Answers `bondy.cert_manager.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    let rotate = || {
        if !admin.is_admin_realm() {
            return Err(Error::NotAuthorized(
                "TLS certificates are rotated from the admin realm only".into(),
            ));
        }
        // Without a TLS listener there is nothing to rotate (Bondy skips such listeners).
        match admin.router.tls_rotation() {
            Some(rotate) => rotate().map(|()| Value::Null).map_err(|e| {
                Error::InvalidData(format!(
                    "TLS certificate not reloaded, the previous one stays: {e}"
                ))
            }),
            None => Ok(Value::Null),
        }
    };
    Some(match name {
        "rotate_all" => rotate(),
        "rotate_listener" => args.string(0, "listener").and_then(|listener| {
            if listener == LISTENER {
                rotate()
            } else {
                Err(args.wrong(&format!(
                    "\"{listener}\" is not a known TLS listener; Junction's is \"{LISTENER}\""
                )))
            }
        }),
        _ => return None,
    })
}
