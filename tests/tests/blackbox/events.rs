//! The audit trail, from the outside.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn events(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Value {
    let resp = app.events(token, query).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Events without a state change are written in the background: poll.
async fn eventually(app: &TestApp, token: &str, query: &[(&str, &str)], want: &str) -> Value {
    for _ in 0..100 {
        let page = events(app, token, query).await;
        if types(&page).iter().any(|t| t == want) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {want} event appeared");
}

#[tokio::test]
async fn each_action_leaves_its_event_with_the_right_fields() {
    let app = spawn_app().await;
    let (email, first) = app.new_user().await;
    let second = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let third = Tokens::from(app.refresh(&second.refresh).await).await;
    app.log_in(&email, "not the password at all").await;
    let resp = app.revoke_session(&third.access, &first.session_id()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let page = eventually(&app, &third.access, &[], "login_failed").await;
    let mut kinds = types(&page);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "login_failed",
            "login_succeeded",
            "session_revoked",
            "signup",
            "token_refreshed"
        ]
    );
    for event in page["items"].as_array().unwrap() {
        assert_eq!(event["client_ip"], "127.0.0.1");
        assert!(
            event["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        assert!(
            event.get("detail").is_none(),
            "internal reasons stay internal"
        );
    }
    let by_type = |t: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(by_type("signup")["session_id"], first.session_id());
    assert_eq!(
        by_type("login_succeeded")["session_id"],
        second.session_id()
    );
    assert_eq!(
        by_type("token_refreshed")["session_id"],
        second.session_id()
    );
    assert_eq!(by_type("session_revoked")["session_id"], first.session_id());
    assert_eq!(by_type("login_failed")["outcome"], "failure");

    app.log_out(&third.access, Some("all")).await;
    let fresh = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let page = events(&app, &fresh.access, &[("type", "logout")]).await;
    assert_eq!(types(&page), ["logout"]);
    app.stop().await;
}

#[tokio::test]
async fn reuse_detection_is_recorded() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_REFRESH_REUSE_GRACE_SECS", "0".to_owned())],
        ..Options::default()
    })
    .await;
    let (email, first) = app.new_user().await;
    app.refresh(&first.refresh).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.refresh(&first.refresh).await;
    let other = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let page = events(
        &app,
        &other.access,
        &[("type", "refresh_token_reuse_detected")],
    )
    .await;
    assert_eq!(types(&page), ["refresh_token_reuse_detected"]);
    assert_eq!(page["items"][0]["session_id"], first.session_id());
    app.stop().await;
}

#[tokio::test]
async fn nobody_sees_anyone_elses_events() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    let (_, bob) = app.new_user().await;
    let alice_events = events(&app, &alice.access, &[]).await;
    let bob_events = events(&app, &bob.access, &[]).await;
    assert_eq!(types(&alice_events), ["signup"]);
    assert_eq!(types(&bob_events), ["signup"]);
    assert_ne!(alice_events["items"][0]["id"], bob_events["items"][0]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn events_are_paginated_and_survive_a_restart() {
    let app = spawn_app().await;
    let (_, mut tokens) = app.new_user().await;
    for _ in 0..4 {
        tokens = Tokens::from(app.refresh(&tokens.refresh).await).await;
    }
    let (dir, data_dir, database_url) = app.stop_keeping_data().await;
    let app = spawn_with(Options {
        data_dir: Some(data_dir),
        database_url,
        ..Options::default()
    })
    .await;
    let first = events(&app, &tokens.access, &[("limit", "3")]).await;
    assert_eq!(types(&first), ["token_refreshed"; 3]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = events(&app, &tokens.access, &[("limit", "3"), ("before", cursor)]).await;
    assert_eq!(types(&rest), ["token_refreshed", "signup"]);
    assert!(rest.get("next_cursor").is_none_or(Value::is_null));
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn rejected_tokens_and_rate_limits_are_recorded_for_operators() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN", "1".to_owned()),
            ("PORTCULLIS_RATE_LIMIT_LOGIN_BURST", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (email, tokens) = app.new_user().await;
    app.log_in(&email, PASSWORD).await;
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut tampered = tokens.access.clone();
    tampered.push('x');
    assert_eq!(app.me(&tampered).await.status(), StatusCode::UNAUTHORIZED);

    // Neither event is tied to a user, so the operator view finds them.
    let db_url = app.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            app.data_dir.join("portcullis.db").display()
        )
    });
    let db = sea_orm::Database::connect(&db_url).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let mut found = Vec::new();
    for _ in 0..100 {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT kind, detail FROM auth_events",
            ))
            .await
            .unwrap();
        found = rows
            .iter()
            .map(|r| {
                (
                    r.try_get::<String>("", "kind").unwrap(),
                    r.try_get::<Option<String>>("", "detail").unwrap(),
                )
            })
            .collect::<Vec<_>>();
        if found.iter().any(|(k, _)| k == "access_token_rejected")
            && found.iter().any(|(k, _)| k == "rate_limit_hit")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        found.contains(&("rate_limit_hit".to_owned(), Some("login".to_owned()))),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(k, d)| k == "access_token_rejected" && d.is_some()),
        "{found:?}"
    );
    app.stop().await;
}

/// The database the app of `data_dir` (and maybe `database_url`) uses.
fn database_url_of(data_dir: &std::path::Path, database_url: Option<&str>) -> String {
    database_url.map_or_else(
        || portcullis_infra::db::sqlite_url(&data_dir.join("portcullis.db")),
        str::to_owned,
    )
}

/// Every stored (kind, detail), read straight from the table.
async fn stored_kinds(url: &str) -> Vec<(String, Option<String>)> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = sea_orm::Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT kind, detail FROM auth_events",
        ))
        .await
        .unwrap();
    let found = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "kind").unwrap(),
                r.try_get::<Option<String>>("", "detail").unwrap(),
            )
        })
        .collect();
    db.close().await.unwrap();
    found
}

/// How many events the rows of `kind` stand for: 1 each, or N for a
/// summary whose detail ends with `count=N`.
fn represented(rows: &[(String, Option<String>)], kind: &str) -> u64 {
    rows.iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, detail)| {
            detail
                .as_deref()
                .and_then(|d| d.rsplit_once("count="))
                .map_or(1, |(_, n)| n.parse::<u64>().unwrap())
        })
        .sum()
}

#[tokio::test]
async fn a_flood_of_bad_tokens_and_refusals_from_one_client_is_a_few_counted_rows() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN", "1".to_owned()),
            ("PORTCULLIS_RATE_LIMIT_LOGIN_BURST", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    for _ in 0..300 {
        let resp = app.me("a.b.c").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    app.log_in("nobody@example.com", PASSWORD).await;
    for _ in 0..100 {
        let resp = app.log_in("nobody@example.com", PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    // Stopping flushes the queue and the counts of the open windows.
    let (dir, data_dir, database_url) = app.stop_keeping_data().await;
    let rows = stored_kinds(&database_url_of(&data_dir, database_url.as_deref())).await;

    let rejected: Vec<_> = rows
        .iter()
        .filter(|(k, _)| k == "access_token_rejected")
        .collect();
    assert!(
        (1..=5).contains(&rejected.len()),
        "300 bad tokens wrote {} rows",
        rejected.len()
    );
    assert!(
        rejected.contains(&&(
            "access_token_rejected".to_owned(),
            Some("malformed".to_owned())
        )),
        "the first is recorded as it came: {rejected:?}"
    );
    assert!(
        rejected
            .iter()
            .any(|(_, d)| d.as_deref().is_some_and(|d| d.contains("count="))),
        "{rejected:?}"
    );
    assert_eq!(
        represented(&rows, "access_token_rejected"),
        300,
        "{rejected:?}"
    );

    let limited: Vec<_> = rows.iter().filter(|(k, _)| k == "rate_limit_hit").collect();
    assert!((1..=5).contains(&limited.len()), "{limited:?}");
    assert_eq!(represented(&rows, "rate_limit_hit"), 100, "{limited:?}");
    // The one log-in that was let through is recorded as itself.
    assert_eq!(
        rows.iter().filter(|(k, _)| k == "login_failed").count(),
        1,
        "{rows:?}"
    );
    drop(dir);
}

#[tokio::test]
async fn events_older_than_the_retention_are_purged() {
    use portcullis_domain::audit::{AuthEvent, AuthEventKind, AuthEventRepository, Outcome};
    use portcullis_domain::context::RequestContext;

    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let (dir, data_dir, database_url) = app.stop_keeping_data().await;
    let url = database_url_of(&data_dir, database_url.as_deref());

    // Events of 31 and 29 days ago, written as the service writes them.
    let db = portcullis_infra::db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let at = |days: i64| {
        AuthEvent::new(
            AuthEventKind::LoginFailed,
            Outcome::Failure,
            now - time::Duration::days(days),
            &RequestContext::default(),
        )
        .detail(format!("{days}_days_old"))
    };
    db.events().append(&[at(31), at(29)]).await.unwrap();
    db.connection().clone().close().await.unwrap();
    drop(db);

    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_AUDIT_RETENTION_DAYS", "30".to_owned())],
        data_dir: Some(data_dir),
        database_url,
        ..Options::default()
    })
    .await;
    // The purge runs at start and then hourly: wait for it to have run.
    let mut rows = stored_kinds(&url).await;
    for _ in 0..100 {
        if !rows
            .iter()
            .any(|(_, d)| d.as_deref() == Some("31_days_old"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = stored_kinds(&url).await;
    }
    assert!(
        !rows
            .iter()
            .any(|(_, d)| d.as_deref() == Some("31_days_old")),
        "an event past the retention survived: {rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(_, d)| d.as_deref() == Some("29_days_old"))
    );
    assert!(rows.iter().any(|(k, _)| k == "signup"));
    // And the user's own trail still reads.
    let page = events(&app, &tokens.access, &[]).await;
    assert_eq!(types(&page), ["signup"]);
    app.stop().await;
    drop(dir);
}
