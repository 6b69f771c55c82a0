//! Which webhook thresholds a move of usage crosses — without I/O, and cheap enough for
//! the decision path: a few comparisons per limit, against the thresholds every enabled
//! subscription asks for together, held in memory.
//!
//! A threshold is crossed when usage goes from below it to at or past it. A limit whose
//! usage stays past a threshold crosses it no more; one that comes back below it (a
//! reset, a refund, a rolling window sliding on) can cross it again in a later window
//! or bucket — the outbox keeps one event per counter and threshold.

use tollgate_protocol::Limit;

use crate::model::webhook::Threshold;

/// The thresholds of every enabled subscription together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Every percentage, ascending, distinct.
    percents: Vec<u16>,
    /// Whether any subscription asks for the hard limit.
    hard: bool,
}

impl Thresholds {
    /// The union of `thresholds`.
    pub fn new(thresholds: impl IntoIterator<Item = Threshold>) -> Thresholds {
        let mut union = Thresholds::default();
        for threshold in thresholds {
            match threshold {
                Threshold::Percent(percent) => union.percents.push(percent),
                Threshold::Hard => union.hard = true,
            }
        }
        union.percents.sort_unstable();
        union.percents.dedup();
        union
    }

    /// Whether any subscription asks for the hard limit.
    pub fn wants_hard(&self) -> bool {
        self.hard
    }

    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.percents.is_empty() && !self.hard
    }

    /// The thresholds of `limit` that usage going from `before` to `after` crosses.
    pub fn crossed<'a>(
        &'a self,
        limit: &'a Limit,
        before: u64,
        after: u64,
    ) -> impl Iterator<Item = Threshold> + 'a {
        let moved_up = after > before;
        (self.percents.iter().map(|&p| Threshold::Percent(p)))
            .chain(self.hard.then_some(Threshold::Hard))
            .filter(move |_| moved_up)
            .filter(move |t| t.units(limit).is_some_and(|u| before < u && u <= after))
    }

    /// The thresholds of `limit` that usage `used` is at or past.
    pub fn reached<'a>(
        &'a self,
        limit: &'a Limit,
        used: u64,
    ) -> impl Iterator<Item = Threshold> + 'a {
        (self.percents.iter().map(|&p| Threshold::Percent(p)))
            .chain(self.hard.then_some(Threshold::Hard))
            .filter(move |t| t.units(limit).is_some_and(|u| u <= used))
    }
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::WarnAt;

    use super::*;

    fn limit(quota: u64, overage: u64) -> Limit {
        Limit {
            quota,
            overage,
            warn_at: WarnAt::DEFAULT,
            unlimited: false,
        }
    }

    fn set() -> Thresholds {
        Thresholds::new([
            Threshold::Percent(80),
            Threshold::Percent(50),
            Threshold::Hard,
            Threshold::Percent(100),
            Threshold::Percent(50),
        ])
    }

    #[test]
    fn a_jump_crosses_every_threshold_between_before_and_after() {
        let limit = limit(10, 2);
        let crossed: Vec<_> = set().crossed(&limit, 4, 12).collect();
        assert_eq!(
            crossed,
            [
                Threshold::Percent(50),
                Threshold::Percent(80),
                Threshold::Percent(100),
                Threshold::Hard
            ]
        );
    }

    #[test]
    fn reaching_a_threshold_exactly_crosses_it_and_staying_past_it_does_not() {
        let limit = limit(10, 0);
        assert_eq!(
            set().crossed(&limit, 4, 5).collect::<Vec<_>>(),
            [Threshold::Percent(50)]
        );
        assert_eq!(set().crossed(&limit, 5, 7).count(), 0);
        assert_eq!(set().crossed(&limit, 9, 9).count(), 0);
        assert_eq!(
            set().crossed(&limit, 9, 3).count(),
            0,
            "a refund crosses nothing"
        );
        assert_eq!(
            set().crossed(&limit, 9, 10).collect::<Vec<_>>(),
            [Threshold::Percent(100), Threshold::Hard],
            "without overage the quota is the hard limit"
        );
    }

    #[test]
    fn what_usage_has_reached_is_every_threshold_at_or_below_it() {
        let limit = limit(10, 2);
        assert_eq!(
            set().reached(&limit, 8).collect::<Vec<_>>(),
            [Threshold::Percent(50), Threshold::Percent(80)]
        );
        assert_eq!(set().reached(&limit, 4).count(), 0);
        assert_eq!(set().reached(&limit, 12).count(), 4);
    }

    #[test]
    fn nothing_asked_for_is_empty() {
        assert!(Thresholds::default().is_empty());
        assert!(!Thresholds::new([Threshold::Hard]).is_empty());
        assert_eq!(Thresholds::default().crossed(&limit(1, 0), 0, 1).count(), 0);
    }
}
