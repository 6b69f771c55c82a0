//! A control plane that answers the filter's calls with 404 or 401 is not down but
//! misconfigured: the filter's cluster reaches a listener without the decision API
//! (the admin listener, when the control plane runs `--decision-listen`), or its token
//! is not the control plane's `--decision-token`. Such an answer still gets the failure
//! mode, as any failed call does; it is also counted in a stat of its own, and logged
//! once per worker with its likely cause, so an operator learns why every request
//! fails open (or closed) instead of reading "status 404" in a warning per request.

/// A call the control plane answered as a misconfigured filter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misconfigured {
    /// 404 or 401.
    pub status: u32,
    /// The endpoint called (`/v1/check`, `/v1/leases`, …).
    pub path: &'static str,
}

impl Misconfigured {
    /// `Some` when the control plane answered a call of `path` with a status that says
    /// the filter is pointed at the wrong listener or holds the wrong token.
    pub fn of(status: Option<u32>, path: &'static str) -> Option<Misconfigured> {
        match status {
            Some(status @ (404 | 401)) => Some(Misconfigured { status, path }),
            _ => None,
        }
    }

    /// The line to log: what was answered, and the likely cause (`token_set`: the
    /// filter config has a `control_plane.token`).
    pub fn message(&self, token_set: bool) -> String {
        let Misconfigured { status, path } = self;
        let cause = match (status, token_set) {
            (404, _) => {
                "is control_plane.cluster pointing at the decision listener (--decision-listen)?"
            }
            (_, true) => "control_plane.token does not match the control plane's --decision-token",
            (_, false) => {
                "control_plane.token is not set, and the control plane asks for its --decision-token"
            }
        };
        format!(
            "tollgate: the control plane answered {status} to {path}: {cause} \
             (logged once; the stat control_plane_misconfigured counts every such answer)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_found_and_unauthorized_say_misconfigured() {
        for status in [None, Some(200), Some(403), Some(422), Some(503), Some(504)] {
            assert_eq!(Misconfigured::of(status, "/v1/check"), None, "{status:?}");
        }
        let found = Misconfigured::of(Some(404), "/v1/leases");
        assert_eq!(
            found,
            Some(Misconfigured {
                status: 404,
                path: "/v1/leases"
            })
        );
    }

    #[test]
    fn the_message_names_the_likely_cause() {
        let not_found = Misconfigured::of(Some(404), "/v1/check").unwrap();
        assert!(not_found.message(true).starts_with(
            "tollgate: the control plane answered 404 to /v1/check: is control_plane.cluster \
             pointing at the decision listener (--decision-listen)?"
        ));
        let unauthorized = Misconfigured::of(Some(401), "/v1/settle").unwrap();
        assert!(unauthorized.message(true).starts_with(
            "tollgate: the control plane answered 401 to /v1/settle: control_plane.token does \
             not match the control plane's --decision-token"
        ));
        assert!(unauthorized
            .message(false)
            .contains("control_plane.token is not set"));
    }
}
