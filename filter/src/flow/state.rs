//! Where one request stands, and the one function that moves it on ([`State::on`]).
//!
//! ```text
//! Start ──not counted (match)──▶ Passed (untouched)
//!   │──quota_path──▶ Viewing ──not GET/HEAD, no/invalid tenant──▶ Replied (405, 401/400)
//!   │                  │  waits (Envoy paused): the tenant's view (/v1/quota), nothing counted
//!   │                  └──answered──▶ Replied (200 view, 403) | failure or deadline ──▶ Replied (503)
//!   │──no/invalid tenant──▶ Replied (401/400)
//!   └──identified──▶ Deciding ──remembered rejection──▶ Replied (429, no callout)
//!                      │  waits (Envoy paused): a check, a lease (its own refill), or
//!                      │  another request's refill; one deadline for all of them
//!                      │──paid from budgets, or allow/warn──▶ Flowing(metered)
//!                      │──reject──▶ Replied (429, 403)
//!                      └──failure or deadline──▶ Flowing(uncounted) | Replied (503)
//! Flowing(metered) ──body past its reservation──▶ waits (a check, paused) ──allow──▶ Flowing
//!   │  a streamed body asks ahead while it flows; one ask ahead refused ──▶ exact asks only
//!   │──reject──▶ Replied (429; what was counted is still settled)
//!   └──failure (open), or refused in shadow mode──▶ Flowing(unmetered)
//! Flowing, Replied ──request over──▶ settlement of what was counted
//! ```
//!
//! Envoy's side of it: `Running`, `Paused` while a wait needs its answer (resumed by
//! it), or `Holding`: a body callback answered `Pause` to keep the body whole (a priced
//! cost's `include_usage` rewrites it at its end), and a later body callback lets it go
//! by answering `Continue` — nothing to resume.
//!
//! At most one wait is in flight per request. The first of its answer and its deadline
//! wins; whatever comes second finds nothing waiting and is ignored. Envoy keeps the
//! request paused (and buffers its body) while a wait that needs an answer is in
//! flight.

/// What a wait in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The decision on the request.
    Admission,
    /// `asked` more body bytes, for bytes Envoy buffers; `exact` when that is no more
    /// than was seen.
    Body { asked: u64, exact: bool },
    /// `asked` more body bytes ahead of need, while the body keeps flowing within
    /// what is already counted (a chunked upload's next reservation).
    Ahead { asked: u64 },
    /// A new lease of a budget (`/v1/leases`), for this request and the next ones.
    Lease,
    /// No callout: another request of this worker is refilling the budget this one
    /// needs, and this one waits for that answer (single flight).
    Refill,
    /// The caller's own quota (`/v1/quota`), which the filter answers with.
    View,
}

/// A wait in flight: a callout this request sent, or another request's refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wait {
    /// What it is for.
    pub purpose: Purpose,
    /// When the failure mode decides instead (ms since the epoch).
    pub deadline_ms: u64,
}

/// How the request's body bytes are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyAsks {
    /// Reserved at the headers (`content-length`, no body, or bytes not counted); a
    /// body that runs past it is checked before it goes on.
    Announced,
    /// No `content-length`: reservations are asked for ahead while the body flows.
    Streamed,
    /// An ask ahead did not fit: from now on only exactly what was seen is asked for,
    /// so only a body that really crosses the limit is refused.
    ExactOnly,
}

/// What the fast path already did for a request being decided: each at most once, so
/// a request never goes round between budgets and refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FastPath {
    /// Neither yet.
    Untried,
    /// It waited for another request's refill.
    Waited,
    /// It refilled a budget itself.
    Refilled,
    /// Both.
    WaitedAndRefilled,
}

/// What the control plane counted of a request on its way, and whether its body is
/// still checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// Admitted and counted; body bytes past the reservation are checked.
    Metered,
    /// Counted, but the rest of the body passes unchecked (the failure mode let it,
    /// or a refusal in shadow mode); settled to what the upstream got.
    Unmetered,
    /// Let through without being counted: nothing to settle.
    Uncounted,
}

/// The request's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Headers not seen yet.
    Start,
    /// Not counted: passes untouched.
    Passed,
    /// It asks for the caller's own quota (`quota_path`): the filter answers it, and
    /// nothing of it is counted or reaches the upstream.
    Viewing,
    /// Tenant and costs known; admission being decided.
    Deciding { body: BodyAsks, fast_path: FastPath },
    /// Admitted, or let through by the failure mode or shadow mode: on its way.
    Flowing { body: BodyAsks, count: Count },
    /// The filter answered the request itself; `count` says whether what the control
    /// plane counted is still to be settled.
    Replied { count: Count },
}

/// Whether Envoy keeps the request paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Envoy {
    /// It goes on (or the current callback may let it).
    Running,
    /// A callback answered `Pause` and the request was not resumed since.
    Paused,
    /// A body callback answered `Pause` to hold the body until its end; the next body
    /// callback lets it go (answering `Continue`), no resume needed.
    Holding,
}

/// What happened to the request: the input of [`State::on`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// The request does not count.
    Pass,
    /// It asks for the caller's own quota.
    ViewAsked,
    /// Its tenant and costs are known, `body` says how its body is asked for.
    Identified(BodyAsks),
    /// It now waits for `Wait`.
    Waiting(Wait),
    /// What it waited for is over: answered, past its deadline, woken, or abandoned.
    WaitOver,
    /// A callback answered `Pause`.
    Paused,
    /// A body callback answered `Pause` to hold the body until its end.
    Held,
    /// Envoy was told to resume it (or the callback lets it continue).
    Resumed,
    /// It waits for another request's refill.
    WaitedForRefill,
    /// Its own refill was answered.
    Refilled,
    /// Admitted and counted.
    Admitted,
    /// The failure mode or shadow mode lets it through: uncounted when it was not
    /// admitted yet, its body unchecked from here when it was.
    LetThrough,
    /// An ask ahead did not fit.
    AheadRefused,
    /// The filter answered it.
    Replied,
}

/// Where one request stands: its phase, what it waits for, and whether it is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct State {
    phase: Phase,
    wait: Option<Wait>,
    envoy: Envoy,
}

impl Default for State {
    fn default() -> Self {
        State {
            phase: Phase::Start,
            wait: None,
            envoy: Envoy::Running,
        }
    }
}

impl State {
    /// Every change of state, in one place.
    ///
    /// | event | phase | wait | Envoy |
    /// |---|---|---|---|
    /// | `Pass` | Start → Passed | | |
    /// | `ViewAsked` | Start → Viewing | | |
    /// | `Identified` | Start → Deciding | | |
    /// | `Waiting` | | → the wait | |
    /// | `WaitOver` | | → none | |
    /// | `Paused` | | | → Paused |
    /// | `Held` | | | → Holding |
    /// | `Resumed` | | | → Running |
    /// | `WaitedForRefill`, `Refilled` | Deciding: the fast path's record | | |
    /// | `Admitted` | → Flowing(metered) | | |
    /// | `LetThrough` | Flowing(metered) → Flowing(unmetered); other Flowing stays; else → Flowing(uncounted) | | |
    /// | `AheadRefused` | Flowing: body asks → exact only | | |
    /// | `Replied` | → Replied, keeping what was counted | → none | → Running |
    ///
    /// A flowing or deciding request keeps how its body is asked for; any other event
    /// leaves the phase as it is.
    pub(super) fn on(&mut self, event: Event) {
        match event {
            Event::Pass => self.phase = Phase::Passed,
            Event::ViewAsked => self.phase = Phase::Viewing,
            Event::Identified(body) => {
                self.phase = Phase::Deciding {
                    body,
                    fast_path: FastPath::Untried,
                }
            }
            Event::Waiting(wait) => self.wait = Some(wait),
            Event::WaitOver => self.wait = None,
            Event::Paused => self.envoy = Envoy::Paused,
            Event::Held => self.envoy = Envoy::Holding,
            Event::Resumed => self.envoy = Envoy::Running,
            Event::WaitedForRefill | Event::Refilled => {
                if let Phase::Deciding { fast_path, .. } = &mut self.phase {
                    *fast_path = fast_path.after(event);
                }
            }
            Event::Admitted => {
                self.phase = Phase::Flowing {
                    body: self.body_asks(),
                    count: Count::Metered,
                }
            }
            Event::LetThrough => {
                self.phase = Phase::Flowing {
                    body: self.body_asks(),
                    count: match self.phase {
                        Phase::Flowing {
                            count: Count::Metered,
                            ..
                        } => Count::Unmetered,
                        Phase::Flowing { count, .. } => count,
                        _ => Count::Uncounted,
                    },
                }
            }
            Event::AheadRefused => {
                if let Phase::Flowing { body, .. } = &mut self.phase {
                    *body = BodyAsks::ExactOnly;
                }
            }
            Event::Replied => {
                self.phase = Phase::Replied {
                    count: self.count(),
                };
                self.wait = None;
                self.envoy = Envoy::Running;
            }
        }
    }

    /// What it waits for, if anything.
    pub(super) fn wait(&self) -> Option<Wait> {
        self.wait
    }

    /// Whether it waits for a wait of `purpose`.
    pub(super) fn waits_for(&self, purpose: Purpose) -> bool {
        matches!(self.wait, Some(w) if w.purpose == purpose)
    }

    /// Whether Envoy keeps it paused for a wait's answer.
    pub(super) fn is_paused(&self) -> bool {
        self.envoy == Envoy::Paused
    }

    /// Whether Envoy holds its body until a later body callback lets it go.
    pub(super) fn is_holding(&self) -> bool {
        self.envoy == Envoy::Holding
    }

    /// Whether it is on its way (admitted or let through).
    pub(super) fn is_flowing(&self) -> bool {
        matches!(self.phase, Phase::Flowing { .. })
    }

    /// Whether the filter answered it.
    pub(super) fn is_replied(&self) -> bool {
        matches!(self.phase, Phase::Replied { .. })
    }

    /// Whether the control plane counted it: it is to be settled.
    pub(super) fn is_counted(&self) -> bool {
        matches!(self.count(), Count::Metered | Count::Unmetered)
    }

    /// Whether its body bytes are still checked.
    pub(super) fn is_metered(&self) -> bool {
        self.count() == Count::Metered
    }

    /// How its body is asked for.
    pub(super) fn body_asks(&self) -> BodyAsks {
        match self.phase {
            Phase::Deciding { body, .. } | Phase::Flowing { body, .. } => body,
            Phase::Start | Phase::Passed | Phase::Viewing | Phase::Replied { .. } => {
                BodyAsks::Announced
            }
        }
    }

    /// Whether it may refill a budget (once at most).
    pub(super) fn may_refill(&self) -> bool {
        matches!(
            self.phase,
            Phase::Deciding {
                fast_path: FastPath::Untried | FastPath::Waited,
                ..
            }
        )
    }

    /// Whether it may wait for another request's refill (once at most).
    pub(super) fn may_wait_for_refill(&self) -> bool {
        matches!(
            self.phase,
            Phase::Deciding {
                fast_path: FastPath::Untried | FastPath::Refilled,
                ..
            }
        )
    }

    fn count(&self) -> Count {
        match self.phase {
            Phase::Flowing { count, .. } | Phase::Replied { count } => count,
            Phase::Start | Phase::Passed | Phase::Viewing | Phase::Deciding { .. } => {
                Count::Uncounted
            }
        }
    }
}

impl FastPath {
    /// The record after `event` (a wait for another's refill, or a refill of its own).
    fn after(self, event: Event) -> FastPath {
        match (self, event) {
            (FastPath::Untried, Event::WaitedForRefill) => FastPath::Waited,
            (FastPath::Untried, Event::Refilled) => FastPath::Refilled,
            (FastPath::Waited, Event::Refilled) | (FastPath::Refilled, Event::WaitedForRefill) => {
                FastPath::WaitedAndRefilled
            }
            (done, _) => done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deciding() -> State {
        let mut state = State::default();
        state.on(Event::Identified(BodyAsks::Streamed));
        state
    }

    #[test]
    fn an_admitted_request_is_metered_until_the_failure_mode_lets_its_body_through() {
        let mut state = deciding();
        assert!(!state.is_counted());
        state.on(Event::Admitted);
        assert!(state.is_flowing() && state.is_metered() && state.is_counted());
        assert_eq!(
            state.body_asks(),
            BodyAsks::Streamed,
            "kept from the headers"
        );
        state.on(Event::LetThrough);
        assert!(state.is_counted() && !state.is_metered());
        state.on(Event::Replied);
        assert!(
            state.is_replied() && state.is_counted(),
            "still to be settled"
        );
    }

    #[test]
    fn a_request_let_through_before_its_admission_is_not_counted() {
        let mut state = deciding();
        state.on(Event::LetThrough);
        assert!(state.is_flowing() && !state.is_counted() && !state.is_metered());
        state.on(Event::LetThrough);
        assert!(!state.is_counted());
    }

    #[test]
    fn a_reply_ends_the_wait_and_the_pause() {
        let mut state = deciding();
        let wait = Wait {
            purpose: Purpose::Admission,
            deadline_ms: 10,
        };
        state.on(Event::Waiting(wait));
        state.on(Event::Paused);
        assert!(state.waits_for(Purpose::Admission) && state.is_paused());
        state.on(Event::Replied);
        assert_eq!(state.wait(), None);
        assert!(!state.is_paused() && !state.is_counted());
    }

    #[test]
    fn a_request_refills_once_and_waits_for_another_refill_once() {
        let mut state = deciding();
        assert!(state.may_refill() && state.may_wait_for_refill());
        state.on(Event::WaitedForRefill);
        assert!(state.may_refill() && !state.may_wait_for_refill());
        state.on(Event::Refilled);
        assert!(!state.may_refill() && !state.may_wait_for_refill());
        state.on(Event::Admitted);
        assert!(!state.may_refill(), "only while deciding");
    }

    #[test]
    fn a_view_waits_paused_and_is_never_counted() {
        let mut state = State::default();
        state.on(Event::ViewAsked);
        let wait = Wait {
            purpose: Purpose::View,
            deadline_ms: 10,
        };
        state.on(Event::Waiting(wait));
        state.on(Event::Paused);
        assert!(state.waits_for(Purpose::View) && state.is_paused());
        assert!(!state.is_flowing() && !state.is_counted());
        state.on(Event::Replied);
        assert!(state.is_replied() && !state.is_counted() && !state.is_paused());
        assert_eq!(state.wait(), None);
    }

    #[test]
    fn a_held_body_is_no_pause_a_wait_can_end_and_a_check_of_it_pauses() {
        let mut state = deciding();
        state.on(Event::Admitted);
        state.on(Event::Held);
        assert!(state.is_holding() && !state.is_paused());
        state.on(Event::Paused);
        assert!(state.is_paused() && !state.is_holding());
        state.on(Event::Held);
        state.on(Event::Resumed);
        assert!(!state.is_holding() && !state.is_paused());
        state.on(Event::Held);
        state.on(Event::Replied);
        assert!(!state.is_holding(), "a reply lets nothing be held");
    }

    #[test]
    fn an_ask_ahead_refused_leaves_only_exact_asks() {
        let mut state = deciding();
        state.on(Event::Admitted);
        state.on(Event::AheadRefused);
        assert_eq!(state.body_asks(), BodyAsks::ExactOnly);
        assert!(state.is_metered());
    }
}
