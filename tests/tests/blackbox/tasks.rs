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
