//! A tenant's view of its own quota (`POST /v1/quota`) from what the stores read —
//! without I/O: every limit of every level that counts (not a level in `off` mode), its
//! usage and status as a check would see them, the binding one, its burn rate
//! ([`super::burn`]) and its forecast.

use std::ops::Range;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tollgate_protocol::quota::{BurnRate, Forecast, LimitUsage, QuotaView, RateBasis};
use tollgate_protocol::RejectReason;

use super::answer::{frees_at, policy_status, tightest, usage_status};
use super::burn::{forecast, rate, rate_keys, rate_windows, resets, Rate, Resets};
use super::check::Planned;
use crate::model::window::Window;
use crate::model::Mode;
use crate::store::{Outcome, Sampled};

/// An instant as the view writes it: RFC 3339, UTC, milliseconds.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the rates of a view read: the counters of every windowed limit's recent
/// windows, in one list, and where each limit's are in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateReads {
    /// Every counter key to read ([`CounterStore::samples`](crate::store::CounterStore::samples)).
    pub keys: Vec<String>,
    /// Per planned limit: its windows, current first, and where their keys are in
    /// `keys` (empty for gauges).
    pub limits: Vec<(Vec<Window>, Range<usize>)>,
}

/// The counters the burn rates of `planned` (the limits of the tree `root`) read at
/// `now`.
pub fn rate_reads(planned: &[Planned], root: &str, now: DateTime<Utc>) -> RateReads {
    let mut reads = RateReads::default();
    for p in planned {
        let windows = match p.series() {
            Some(series) if p.mode != Mode::Off => rate_windows(series, now),
            _ => Vec::new(),
        };
        let first = reads.keys.len();
        reads.keys.extend(rate_keys(p, root, &windows));
        reads.limits.push((windows, first..reads.keys.len()));
    }
    reads
}

/// The view of a tenant nobody assigned a tier to: no limits, and why.
pub fn unknown_tenant_view(tenant: &str, now: DateTime<Utc>) -> QuotaView {
    QuotaView {
        tenant: tenant.to_string(),
        at: instant(now),
        reason: Some(RejectReason::UnknownTenant),
        binding: None,
        limits: Vec::new(),
    }
}

/// The view of `tenant` whose limits were `planned` and read as `outcome`, with what
/// the store read for `reads` (`sampled`, in the order of its keys), at `now`.
pub fn view(
    tenant: &str,
    planned: &[Planned],
    outcome: &Outcome,
    reads: &RateReads,
    sampled: &[Sampled],
    now: DateTime<Utc>,
) -> Result<QuotaView, String> {
    let lengths = [outcome.used.len(), outcome.oldest.len(), reads.limits.len()];
    if lengths.iter().any(|&n| n != planned.len()) || sampled.len() != reads.keys.len() {
        return Err("the stores answered for the wrong number of limits".into());
    }
    let now_ms = now.timestamp_millis();
    let mut limits = Vec::new();
    let mut statuses = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        if p.mode == Mode::Off {
            continue;
        }
        let (used, oldest) = (outcome.used[i], outcome.oldest[i]);
        let policy = policy_status(p, used, oldest, now);
        let (windows, at) = &reads.limits[i];
        let counters: Vec<(Window, Sampled)> = windows
            .iter()
            .copied()
            .zip(sampled[at.clone()].iter().cloned())
            .collect();
        let (burn, resets) = match (p.series(), p.windows.first()) {
            (Some(series), Some(current)) => (
                Burn::Rate(rate(&counters, now_ms)),
                resets(series, current, now),
            ),
            _ => (Burn::Gauge, Resets::Never),
        };
        let outlook = forecast(
            policy.limit,
            p.def.limit.unlimited,
            used,
            burn.rate(),
            resets,
        );
        limits.push(LimitUsage {
            tenant: p.tenant.clone(),
            resource: p.def.resource.clone(),
            policy: policy.name.clone(),
            period: p.def.span.period_name().to_string(),
            window: p.def.span.window_kind().to_string(),
            quota: policy.quota,
            limit: policy.limit,
            used,
            remaining: policy.remaining,
            unlimited: p.def.limit.unlimited,
            status: usage_status(&p.limit(), used),
            binding: false,
            reset_after_s: policy.reset_after_s,
            resets_at: frees_at(p, oldest).map(instant),
            burn_rate: burn.shown(),
            forecast: Forecast {
                outcome: outlook.outcome,
                runs_out_in_s: outlook.runs_out_in_ms.map(|ms| ms / 1_000),
                runs_out_at: outlook.runs_out_in_ms.map(|ms| {
                    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
                    instant(
                        now.checked_add_signed(Duration::milliseconds(ms))
                            .unwrap_or(DateTime::<Utc>::MAX_UTC),
                    )
                }),
            },
        });
        statuses.push((policy, p.def.limit.unlimited));
    }
    let binding = tightest(statuses.iter().map(|(s, unlimited)| (s, *unlimited)));
    if let Some(row) = binding.and_then(|i| limits.get_mut(i)) {
        row.binding = true;
    }
    Ok(QuotaView {
        tenant: tenant.to_string(),
        at: instant(now),
        reason: None,
        binding: binding
            .and_then(|i| statuses.get(i))
            .map(|(s, _)| s.clone()),
        limits,
    })
}

/// A limit's burn rate: known, unknown, or not one (a gauge).
enum Burn {
    Rate(Option<Rate>),
    Gauge,
}

impl Burn {
    fn rate(&self) -> Option<&Rate> {
        match self {
            Burn::Rate(rate) => rate.as_ref(),
            Burn::Gauge => None,
        }
    }

    fn shown(&self) -> BurnRate {
        let unknown = |basis| BurnRate {
            per_second: None,
            units: None,
            since: None,
            span_ms: None,
            basis,
        };
        match self {
            Burn::Rate(Some(rate)) => BurnRate {
                per_second: Some(rate.per_second()),
                units: Some(rate.units),
                since: DateTime::from_timestamp_millis(rate.since_ms).map(instant),
                span_ms: Some(rate.span_ms),
                basis: rate.basis,
            },
            Burn::Rate(None) => unknown(RateBasis::NoSamples),
            Burn::Gauge => unknown(RateBasis::Gauge),
        }
    }
}

#[cfg(test)]
mod tests {
    use tollgate_protocol::quota::{ForecastOutcome, UsageStatus};

    use super::*;
    use crate::model::window::Period;
    use crate::model::{LimitDef, Span};
    use crate::plan::check::{plan, Select};
    use crate::plan::fixtures::{def, level, now, resolved};
    use crate::store::{CallMode, Sample, Snapshot};

    fn gauge(quota: u64) -> LimitDef {
        LimitDef {
            span: Span::Gauge,
            ..def("concurrent_requests", Period::Month, quota, 0)
        }
    }

    #[test]
    fn every_counting_level_is_shown_with_the_binding_limit_marked() {
        let r = resolved(vec![
            level(
                "acme/web",
                Mode::Enforce,
                vec![def("requests", Period::Month, 1_000, 0), gauge(4)],
            ),
            level(
                "acme/eu",
                Mode::Off,
                vec![def("requests", Period::Day, 1, 0)],
            ),
            level(
                "acme",
                Mode::Enforce,
                vec![def("requests", Period::Day, 100, 20)],
            ),
        ]);
        let p = plan(&r, Select::Everything, CallMode::Read, None, 1, now()).unwrap();
        let reads = rate_reads(&p.planned, &r.root, now());
        assert_eq!(reads.limits.len(), 4);
        assert!(reads.limits[1].0.is_empty(), "a gauge reads nothing");
        assert!(reads.limits[2].0.is_empty(), "nor a level that is off");
        let now_ms = now().timestamp_millis();
        // The month: 400 now, 300 six minutes ago. The day: 90 of 120 now, one sample.
        let mut sampled = vec![Sampled::default(); reads.keys.len()];
        sampled[reads.limits[0].1.start] = Sampled {
            now: Some(Snapshot {
                used: 400,
                epoch: 0,
            }),
            samples: vec![Sample {
                at_ms: now_ms - 360_000,
                used: 300,
                epoch: 0,
            }],
        };
        sampled[reads.limits[3].1.start] = Sampled {
            now: Some(Snapshot { used: 90, epoch: 0 }),
            samples: vec![Sample {
                at_ms: now_ms - 400_000,
                used: 80,
                epoch: 0,
            }],
        };
        let outcome = Outcome {
            admitted: true,
            violated: None,
            used: vec![400, 2, 5, 90],
            oldest: vec![Some(0), None, Some(0), Some(0)],
        };
        let view = view("acme/web", &p.planned, &outcome, &reads, &sampled, now()).unwrap();
        assert_eq!(view.at, "2026-11-17T13:05:09.000Z");
        let whose: Vec<(&str, &str)> = (view.limits.iter())
            .map(|l| (l.tenant.as_str(), l.policy.as_str()))
            .collect();
        assert_eq!(
            whose,
            vec![
                ("acme/web", "monthly"),
                ("acme/web", "concurrent"),
                ("acme", "daily")
            ]
        );
        let [month, gauge, day] = &view.limits[..] else {
            panic!("three limits")
        };
        // The day has 30 of 120 left, the month 600 of 1000: the day binds.
        assert!(day.binding && !month.binding && !gauge.binding);
        let binding = view.binding.as_ref().unwrap();
        assert_eq!((binding.name.as_str(), binding.remaining), ("daily", 30));
        assert_eq!(day.status, UsageStatus::Warning);
        assert_eq!(day.resets_at.as_deref(), Some("2026-11-18T00:00:00.000Z"));
        // 100 in 6 minutes: 600 left in 36 minutes, before the month ends.
        assert_eq!(month.burn_rate.units, Some(100));
        assert_eq!(month.burn_rate.span_ms, Some(360_000));
        assert_eq!(
            month.burn_rate.since.as_deref(),
            Some("2026-11-17T12:59:09.000Z")
        );
        assert_eq!(month.forecast.outcome, ForecastOutcome::RunsOut);
        assert_eq!(month.forecast.runs_out_in_s, Some(2_160));
        assert_eq!(
            month.forecast.runs_out_at.as_deref(),
            Some("2026-11-17T13:41:09.000Z")
        );
        // 10 in 400 s: 30 left in 1200 s, before midnight.
        assert_eq!(day.forecast.runs_out_in_s, Some(1_200));
        assert_eq!(gauge.burn_rate.basis, RateBasis::Gauge);
        assert_eq!(gauge.forecast.outcome, ForecastOutcome::NoRate);
        assert_eq!(gauge.resets_at, None);
    }

    #[test]
    fn an_unknown_tenant_has_no_limits_and_says_why() {
        let view = unknown_tenant_view("ghost", now());
        assert_eq!(view.reason, Some(RejectReason::UnknownTenant));
        assert!(view.limits.is_empty() && view.binding.is_none());
    }

    #[test]
    fn answers_for_the_wrong_number_of_limits_are_refused() {
        let r = resolved(vec![level(
            "acme",
            Mode::Enforce,
            vec![def("requests", Period::Month, 10, 0)],
        )]);
        let p = plan(&r, Select::Everything, CallMode::Read, None, 1, now()).unwrap();
        let reads = rate_reads(&p.planned, &r.root, now());
        let outcome = Outcome {
            admitted: true,
            violated: None,
            used: vec![],
            oldest: vec![],
        };
        assert!(view("acme", &p.planned, &outcome, &reads, &[], now()).is_err());
    }
}
