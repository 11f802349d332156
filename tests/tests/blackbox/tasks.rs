//! The sample protected resource: per-user isolation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn create(app: &TestApp, token: &str, title: &str) -> Value {
    let resp = app
        .create_task(token, &json!({"title": title, "description": "details"}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn tasks_crud_for_their_owner() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    let task = create(&app, &alice.access, "  write tests ").await;
    assert_eq!(task["title"], "write tests");
    assert_eq!(task["done"], false);
    let id = task["id"].as_str().unwrap();

    let got: Value = app.get_task(&alice.access, id).await.json().await.unwrap();
    assert_eq!(got, task);

    let resp = app
        .update_task(
            &alice.access,
            id,
            &json!({"done": true, "description": null}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["done"], true);
    assert!(updated["description"].is_null());
    assert_eq!(updated["title"], "write tests");

    let resp = app.delete_task(&alice.access, id).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_task(&alice.access, id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_user_never_sees_or_changes_another_users_tasks() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    let (_, bob) = app.new_user().await;
    let task = create(&app, &alice.access, "alice's secret").await;
    let id = task["id"].as_str().unwrap();

    assert_problem(
        app.get_task(&bob.access, id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let resp = app
        .update_task(&bob.access, id, &json!({"title": "pwned"}))
        .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app.delete_task(&bob.access, id).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let list: Value = app.list_tasks(&bob.access, &[]).await.json().await.unwrap();
    assert_eq!(list["items"], json!([]));

    let still: Value = app.get_task(&alice.access, id).await.json().await.unwrap();
    assert_eq!(still["title"], "alice's secret");
    app.stop().await;
}

#[tokio::test]
async fn tasks_need_a_token() {
    let app = spawn_app().await;
    // No Authorization header at all: hand-built requests.
    let resp = app
        .request(Method::GET, "/api/v1/tasks")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let resp = app
        .request(Method::POST, "/api/v1/tasks")
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn tasks_are_paginated_newest_first() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    for i in 0..5 {
        create(&app, &alice.access, &format!("task {i}")).await;
    }
    let page1: Value = app
        .list_tasks(&alice.access, &[("limit", "2")])
        .await
        .json()
        .await
        .unwrap();
    let titles = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&page1), ["task 4", "task 3"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .list_tasks(&alice.access, &[("limit", "2"), ("before", cursor)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(&page2), ["task 2", "task 1"]);
    let cursor = page2["next_cursor"].as_str().unwrap();
    let page3: Value = app
        .list_tasks(&alice.access, &[("limit", "2"), ("before", cursor)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(titles(&page3), ["task 0"]);
    assert!(page3.get("next_cursor").is_none_or(Value::is_null));
    app.stop().await;
}

#[tokio::test]
async fn task_input_is_validated() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    for (body, code) in [
        (json!({"title": "   "}), "invalid_title"),
        (json!({"title": "x".repeat(201)}), "invalid_title"),
        (
            json!({"title": "ok", "description": "d".repeat(2001)}),
            "invalid_description",
        ),
    ] {
        let resp = app.create_task(&alice.access, &body).await;
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn null_where_the_document_does_not_allow_it_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, alice) = app.new_user().await;
    let resp = app
        .create_task(&alice.access, &json!({"title": "t", "description": null}))
        .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let task = create(&app, &alice.access, "keep me").await;
    let id = task["id"].as_str().unwrap();
    for body in [
        json!({"done": null}),
        json!({"title": null}),
        json!({"title": null, "done": true}),
    ] {
        let resp = app.update_task(&alice.access, id, &body).await;
        assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let unchanged: Value = app.get_task(&alice.access, id).await.json().await.unwrap();
    assert_eq!(unchanged, task, "a refused update must not touch the task");

    // Numbers and booleans are not strings.
    for body in [
        json!({"title": 42}),
        json!({"title": "ok", "description": true}),
    ] {
        let resp = app.create_task(&alice.access, &body).await;
        assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_document_states_the_bounds_the_server_enforces() {
    let app = spawn_app().await;
    let doc: Value = app.openapi_json().await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    let bounds = |schema: &str, field: &str| {
        let field = &schemas[schema]["properties"][field];
        (field["minLength"].as_u64(), field["maxLength"].as_u64())
    };
    assert_eq!(bounds("Credentials", "email"), (Some(1), Some(254)));
    assert_eq!(bounds("Credentials", "password"), (Some(8), Some(128)));
    assert_eq!(bounds("NewTask", "title"), (Some(1), Some(200)));
    assert_eq!(bounds("NewTask", "description"), (None, Some(2000)));
    assert_eq!(bounds("TaskUpdate", "title"), (Some(1), Some(200)));
    assert_eq!(bounds("TaskUpdate", "description"), (None, Some(2000)));
    assert_eq!(
        schemas["NewTask"]["properties"]["description"]["nullable"],
        Value::Null
    );
    assert_eq!(
        schemas["TaskUpdate"]["properties"]["title"]["nullable"],
        Value::Null
    );
    assert_eq!(
        schemas["TaskUpdate"]["properties"]["done"]["nullable"],
        Value::Null
    );
    assert_eq!(
        schemas["TaskUpdate"]["properties"]["description"]["nullable"],
        true
    );

    // One past each bound is refused; at the bound it is accepted.
    let (_, alice) = app.new_user().await;
    let at = app
        .create_task(
            &alice.access,
            &json!({"title": "t".repeat(200), "description": "d".repeat(2000)}),
        )
        .await;
    assert_eq!(at.status(), StatusCode::CREATED);
    let local = "a".repeat(64);
    let domain = format!(
        "{}.{}.{}.com",
        "c".repeat(63),
        "c".repeat(63),
        "c".repeat(57)
    );
    let email = format!("{local}@{domain}");
    assert_eq!(email.chars().count(), 254);
    let resp = app.sign_up(&email, "a long and quiet river at dawn").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = app
        .sign_up(&format!("x{email}"), "a long and quiet river at dawn")
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}
