//! The quota model's rules in PostgreSQL, one fresh database per test
//! (`#[sqlx::test]`) on one PostgreSQL per run, which the end-to-end harness starts:
//! overcommit, tree depth and cycles, tiers in use, assignment priority and expiry, the
//! event log, and the usage history's rule that a stale snapshot never wins.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::PgPool;
use tollgate_control_plane::model::resolve::resolve;
use tollgate_control_plane::model::window::{Period, Series};
use tollgate_control_plane::model::{LimitDef, LimitOwner, Mode, Ppm, Span, Subject};
use tollgate_control_plane::repo::{
    AssignmentPatch, EventFilter, HistoryFilter, HistoryRow, NewAssignment, NewTenant, NewTier,
    Paging, QuotaRepo, RepoError, TenantPatch, TierPatch,
};
use tollgate_protocol::{Limit, WarnAt};

const ACTOR: &str = "alice@test";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
}

fn per_minute(resource: &str, quota: u64) -> LimitDef {
    LimitDef {
        resource: resource.into(),
        span: Span::Window(Series::calendar(Period::Minute)),
        limit: Limit {
            quota,
            overage: 0,
            warn_at: WarnAt::DEFAULT,
            unlimited: false,
        },
    }
}

async fn tier(repo: &QuotaRepo, name: &str, requests_per_minute: u64) {
    let new = NewTier {
        name: name.into(),
        description: String::new(),
        limits: vec![per_minute("requests", requests_per_minute)],
    };
    repo.create_tier(ACTOR, &new).await.unwrap();
}

fn tenant(id: &str, parent: Option<&str>, tier: Option<&str>) -> NewTenant {
    NewTenant {
        id: id.into(),
        parent_id: parent.map(str::to_string),
        tier: tier.map(str::to_string),
        mode: Mode::Enforce,
        overcommit: Ppm::ONE,
        labels: serde_json::json!({}),
    }
}

fn is_conflict(result: Result<impl std::fmt::Debug, RepoError>, needle: &str) -> bool {
    match result {
        Err(RepoError::Conflict(message)) => {
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
            true
        }
        other => panic!("expected a conflict about {needle}, got {other:?}"),
    }
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn children_quotas_may_sum_past_the_parents_only_by_its_overcommit(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    tier(&repo, "org", 1_000).await;
    tier(&repo, "big", 600).await;
    tier(&repo, "small", 400).await;
    repo.create_tenant(ACTOR, &tenant("acme", None, Some("org")), now())
        .await
        .unwrap();
    repo.create_tenant(ACTOR, &tenant("acme/a", Some("acme"), Some("big")), now())
        .await
        .unwrap();
    repo.create_tenant(ACTOR, &tenant("acme/b", Some("acme"), Some("small")), now())
        .await
        .unwrap();
    // 600 + 400 = 1000: exactly the parent's quota. One more child with a quota is too much.
    assert!(is_conflict(
        repo.create_tenant(ACTOR, &tenant("acme/c", Some("acme"), Some("small")), now())
            .await,
        "overcommit"
    ));
    // A child without a tier of its own is not counted (it is bounded by the parent).
    repo.create_tenant(ACTOR, &tenant("acme/c", Some("acme"), None), now())
        .await
        .unwrap();
    // With overcommit 1.5 the parent allows 1500: 1400 fits.
    let ratio = TenantPatch {
        overcommit: Some(Ppm::from_ratio(1.5).unwrap()),
        ..TenantPatch::default()
    };
    repo.update_tenant(ACTOR, "acme", &ratio, now())
        .await
        .unwrap();
    let on_small = TenantPatch {
        tier: Some(Some("small".into())),
        ..TenantPatch::default()
    };
    repo.update_tenant(ACTOR, "acme/c", &on_small, now())
        .await
        .unwrap();
    // Lowering the ratio back under what is given is refused.
    let back = TenantPatch {
        overcommit: Some(Ppm::ONE),
        ..TenantPatch::default()
    };
    assert!(is_conflict(
        repo.update_tenant(ACTOR, "acme", &back, now()).await,
        "acme"
    ));
    // So is raising a child tier's quota past it: tier writes check every parent using it.
    let raise = TierPatch {
        limits: Some(vec![per_minute("requests", 700)]),
        ..TierPatch::default()
    };
    assert!(is_conflict(
        repo.update_tier(ACTOR, "small", &raise, now()).await,
        "2000"
    ));
    assert_eq!(
        repo.get_tier("small").await.unwrap().limits[0]
            .def
            .limit
            .quota,
        400,
        "rolled back"
    );
    // And a direct assignment or an override that gives a child more.
    let bigger = NewAssignment {
        tier: "org".into(),
        subject: Subject::Tenant("acme/a".into()),
        enabled: true,
        expires_at: None,
    };
    assert!(is_conflict(
        repo.create_assignment(ACTOR, &bigger, now()).await,
        "overcommit"
    ));
    let owner = LimitOwner::Tenant("acme/b".into());
    assert!(is_conflict(
        repo.create_limit(ACTOR, &owner, &per_minute("requests", 900), now())
            .await,
        "overcommit"
    ));
    // A limit on another resource is not this parent's business.
    repo.create_limit(ACTOR, &owner, &per_minute("request_bytes", 900), now())
        .await
        .unwrap();
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn trees_are_at_most_four_deep_and_never_cycle(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    for (id, parent) in [
        ("o", None),
        ("o/t", Some("o")),
        ("o/t/u", Some("o/t")),
        ("o/t/u/d", Some("o/t/u")),
    ] {
        repo.create_tenant(ACTOR, &tenant(id, parent, None), now())
            .await
            .unwrap();
    }
    assert!(is_conflict(
        repo.create_tenant(ACTOR, &tenant("o/t/u/d/e", Some("o/t/u/d"), None), now())
            .await,
        "5 levels"
    ));
    // Moving a two-level subtree under a level-3 tenant would make 5 levels.
    repo.create_tenant(ACTOR, &tenant("x", None, None), now())
        .await
        .unwrap();
    repo.create_tenant(ACTOR, &tenant("x/y", Some("x"), None), now())
        .await
        .unwrap();
    let under_u = TenantPatch {
        parent_id: Some(Some("o/t/u".into())),
        ..TenantPatch::default()
    };
    assert!(is_conflict(
        repo.update_tenant(ACTOR, "x", &under_u, now()).await,
        "levels"
    ));
    let under_t = TenantPatch {
        parent_id: Some(Some("o/t".into())),
        ..TenantPatch::default()
    };
    repo.update_tenant(ACTOR, "x", &under_t, now())
        .await
        .unwrap();
    // A tenant cannot move under its own descendant, nor itself.
    let under_child = TenantPatch {
        parent_id: Some(Some("x/y".into())),
        ..TenantPatch::default()
    };
    assert!(is_conflict(
        repo.update_tenant(ACTOR, "x", &under_child, now()).await,
        "cycle"
    ));
    let under_self = TenantPatch {
        parent_id: Some(Some("x".into())),
        ..TenantPatch::default()
    };
    assert!(is_conflict(
        repo.update_tenant(ACTOR, "x", &under_self, now()).await,
        "cycle"
    ));
    // The chain the check path loads: the tenant first, the root last.
    let chain = repo.load_chain("x/y", now()).await.unwrap().unwrap();
    let ids: Vec<&str> = chain.levels.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, vec!["x/y", "x", "o/t", "o"]);
    assert_eq!(chain.root(), Some("o"));
    // A tenant with children cannot be deleted; a leaf can.
    assert!(is_conflict(repo.delete_tenant(ACTOR, "x").await, "child"));
    repo.delete_tenant(ACTOR, "x/y").await.unwrap();
    repo.delete_tenant(ACTOR, "x").await.unwrap();
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_tier_in_use_cannot_be_deleted(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    tier(&repo, "pro", 10).await;
    tier(&repo, "beta", 10).await;
    tier(&repo, "spare", 10).await;
    repo.create_tenant(ACTOR, &tenant("acme", None, Some("pro")), now())
        .await
        .unwrap();
    let role = NewAssignment {
        tier: "beta".into(),
        subject: Subject::Role("tester".into()),
        enabled: false,
        expires_at: None,
    };
    let assignment = repo.create_assignment(ACTOR, &role, now()).await.unwrap();
    assert!(is_conflict(
        repo.delete_tier(ACTOR, "pro").await,
        "1 tenant"
    ));
    assert!(is_conflict(
        repo.delete_tier(ACTOR, "beta").await,
        "1 assignment"
    ));
    repo.delete_tier(ACTOR, "spare").await.unwrap();
    assert!(matches!(
        repo.get_tier("spare").await,
        Err(RepoError::NotFound(_))
    ));
    // Once nothing uses it, it goes, and its limits with it.
    repo.delete_assignment(ACTOR, assignment.id, now())
        .await
        .unwrap();
    repo.delete_tier(ACTOR, "beta").await.unwrap();
    let catalog = repo.load_catalog().await.unwrap();
    assert!(!catalog.tiers.contains_key("beta") && catalog.tiers.contains_key("pro"));
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn assignments_apply_by_priority_and_until_they_expire(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    for (name, quota) in [("free", 1), ("pro", 2), ("beta", 3), ("enterprise", 4)] {
        tier(&repo, name, quota).await;
    }
    repo.create_tenant(ACTOR, &tenant("acme", None, Some("pro")), now())
        .await
        .unwrap();
    repo.create_tenant(ACTOR, &tenant("bare", None, None), now())
        .await
        .unwrap();
    let give = |tier: &str, subject: Subject, expires_at| NewAssignment {
        tier: tier.into(),
        subject,
        enabled: true,
        expires_at,
    };
    repo.create_assignment(ACTOR, &give("free", Subject::Default, None), now())
        .await
        .unwrap();
    repo.create_assignment(
        ACTOR,
        &give("beta", Subject::Role("tester".into()), None),
        now(),
    )
    .await
    .unwrap();
    let until = now() + Duration::days(7);
    let temporary = repo
        .create_assignment(
            ACTOR,
            &give("enterprise", Subject::Tenant("acme".into()), Some(until)),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(temporary.subject.priority(), 300);

    let catalog = repo.load_catalog().await.unwrap();
    let tier_at = |tenant: &str, roles: &[&str], at: DateTime<Utc>, chain| {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        resolve(&catalog, chain, tenant, &roles, at)
            .and_then(|r| r.levels[0].winner.clone())
            .map(|w| w.tier)
    };
    let acme = repo.load_chain("acme", now()).await.unwrap().unwrap();
    let bare = repo.load_chain("bare", now()).await.unwrap().unwrap();
    // The temporary direct assignment (300) beats acme's own tier, then expires.
    assert_eq!(
        tier_at("acme", &["tester"], now(), Some(&acme)).as_deref(),
        Some("enterprise")
    );
    assert_eq!(
        tier_at("acme", &["tester"], until, Some(&acme)).as_deref(),
        Some("pro")
    );
    // Without a tier of its own: a role (200) beats the default (100).
    assert_eq!(
        tier_at("bare", &["tester"], now(), Some(&bare)).as_deref(),
        Some("beta")
    );
    assert_eq!(
        tier_at("bare", &[], now(), Some(&bare)).as_deref(),
        Some("free")
    );
    // A tenant nobody registered gets the default too.
    assert_eq!(
        tier_at("stranger", &[], now(), None).as_deref(),
        Some("free")
    );

    // Disabling the temporary assignment brings the own tier back at once.
    let off = AssignmentPatch {
        enabled: Some(false),
        ..AssignmentPatch::default()
    };
    repo.update_assignment(ACTOR, temporary.id, &off, now())
        .await
        .unwrap();
    let acme = repo.load_chain("acme", now()).await.unwrap().unwrap();
    assert_eq!(
        tier_at("acme", &[], now(), Some(&acme)).as_deref(),
        Some("pro")
    );
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn every_admin_change_is_logged_with_actor_and_before_after_and_never_edited(pool: PgPool) {
    let repo = QuotaRepo::new(pool.clone());
    tier(&repo, "pro", 10).await;
    let raise = TierPatch {
        description: Some("Pro plan".into()),
        ..TierPatch::default()
    };
    repo.update_tier(ACTOR, "pro", &raise, now()).await.unwrap();
    repo.create_tenant("bob@test", &tenant("acme", None, Some("pro")), now())
        .await
        .unwrap();
    let paging = Paging {
        after: None,
        limit: 10,
    };
    let events = repo
        .list_events(&EventFilter::default(), &paging)
        .await
        .unwrap()
        .items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["tenant.created", "tier.updated", "tier.created"],
        "newest first"
    );
    let updated = &events[1].event;
    assert_eq!(updated.actor.as_deref(), Some(ACTOR));
    assert_eq!(updated.before.as_ref().unwrap()["description"], "");
    assert_eq!(updated.after.as_ref().unwrap()["description"], "Pro plan");
    assert_eq!(events[0].event.actor.as_deref(), Some("bob@test"));
    assert_eq!(events[0].event.tenant_id.as_deref(), Some("acme"));
    let by_kind = EventFilter {
        kind: Some("tier.".into()),
        ..EventFilter::default()
    };
    assert_eq!(
        repo.list_events(&by_kind, &paging)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // A refused write leaves no event.
    let _ = repo.delete_tier(ACTOR, "pro").await;
    assert_eq!(
        repo.list_events(&EventFilter::default(), &paging)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // The log is append-only.
    let edit = sqlx::query("UPDATE events SET actor = 'mallory'")
        .execute(&pool)
        .await;
    assert!(edit.is_err());
    let erase = sqlx::query("DELETE FROM events").execute(&pool).await;
    assert!(erase.is_err());
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn usage_history_moves_forward_and_a_newer_epoch_wins(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let row = |used, epoch| HistoryRow {
        tenant_id: "acme".into(),
        resource: "requests".into(),
        series: "month".into(),
        window_start: start,
        window_end: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        used,
        epoch,
    };
    let stored = |repo: QuotaRepo| async move {
        let page = repo
            .list_history(
                "acme",
                &HistoryFilter::default(),
                &Paging {
                    after: None,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        (page.items[0].used, page.items[0].epoch)
    };
    repo.upsert_history(&[row(100, 0)]).await.unwrap();
    // Two instances flushing in any order converge on the larger value.
    repo.upsert_history(&[row(80, 0)]).await.unwrap();
    assert_eq!(stored(repo.clone()).await, (100, 0));
    // A reset (epoch 1) replaces it; a snapshot taken before the reset cannot bring it back.
    repo.upsert_history(&[row(0, 1)]).await.unwrap();
    repo.upsert_history(&[row(120, 0)]).await.unwrap();
    assert_eq!(stored(repo.clone()).await, (0, 1));
    repo.upsert_history(&[row(7, 1)]).await.unwrap();
    assert_eq!(stored(repo.clone()).await, (7, 1));
    // Re-seeding reads what still counts.
    let open = repo
        .open_history(&["acme".into()], start + Duration::days(3))
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert!(repo
        .open_history(&["acme".into()], start + Duration::days(31))
        .await
        .unwrap()
        .is_empty());
}

#[sqlx::test(migrator = "tollgate_control_plane::MIGRATOR")]
async fn a_tier_update_keeps_the_ids_of_limits_it_keeps(pool: PgPool) {
    let repo = QuotaRepo::new(pool);
    let new = NewTier {
        name: "pro".into(),
        description: String::new(),
        limits: vec![
            per_minute("requests", 10),
            per_minute("request_bytes", 1_000),
        ],
    };
    let created = repo.create_tier(ACTOR, &new).await.unwrap();
    let requests_id = created
        .limits
        .iter()
        .find(|l| l.def.resource == "requests")
        .unwrap()
        .id;
    let patch = TierPatch {
        limits: Some(vec![per_minute("requests", 20), per_minute("tokens", 5)]),
        ..TierPatch::default()
    };
    let updated = repo.update_tier(ACTOR, "pro", &patch, now()).await.unwrap();
    let resources: Vec<(&str, u64, bool)> = updated
        .limits
        .iter()
        .map(|l| {
            (
                l.def.resource.as_str(),
                l.def.limit.quota,
                l.id == requests_id,
            )
        })
        .collect();
    assert_eq!(
        resources,
        vec![("requests", 20, true), ("tokens", 5, false)]
    );
    // Two limits on one resource and span are refused by the database too.
    let owner = LimitOwner::Tier("pro".into());
    assert!(is_conflict(
        repo.create_limit(ACTOR, &owner, &per_minute("requests", 1), now())
            .await,
        "already exists"
    ));
}
