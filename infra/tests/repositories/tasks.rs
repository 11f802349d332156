//! `TaskRepository`: owner scoping and newest-first paging by id.

use portcullis_domain::ids::TaskId;
use portcullis_domain::task::{TaskRepository, TaskTitle};
use portcullis_infra::db::Database;
use time::Duration;
use uuid::Uuid;

use crate::support::{contract_tests, new_user, task_for};

contract_tests!(
    tasks_are_scoped_to_their_owner,
    tasks_page_newest_first_with_a_cursor,
    task_order_is_uuid_byte_order,
);

async fn tasks_are_scoped_to_their_owner(db: &Database) {
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let stranger = new_user(db).await;
    let task = task_for(owner.id, TaskId::new(), "write the contract tests");
    tasks.insert(&task).await.unwrap();

    assert_eq!(
        tasks.get(owner.id, task.id).await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(tasks.get(stranger.id, task.id).await.unwrap(), None);
    assert!(tasks.list(stranger.id, None, 10).await.unwrap().is_empty());

    let mut hijacked = task.clone();
    hijacked.title = TaskTitle::parse("pwned").unwrap();
    assert!(!tasks.update(stranger.id, &hijacked).await.unwrap());
    assert!(!tasks.delete(stranger.id, task.id).await.unwrap());
    assert_eq!(
        tasks.get(owner.id, task.id).await.unwrap(),
        Some(task.clone())
    );

    let mut edited = task.clone();
    edited.title = TaskTitle::parse("ship them").unwrap();
    edited.description = None;
    edited.done = true;
    edited.updated_at = task.updated_at + Duration::seconds(30);
    assert!(tasks.update(owner.id, &edited).await.unwrap());
    assert_eq!(tasks.get(owner.id, task.id).await.unwrap(), Some(edited));

    assert!(tasks.delete(owner.id, task.id).await.unwrap());
    assert_eq!(tasks.get(owner.id, task.id).await.unwrap(), None);
    assert!(!tasks.delete(owner.id, task.id).await.unwrap());
    assert!(!tasks.update(owner.id, &task).await.unwrap());
}

async fn tasks_page_newest_first_with_a_cursor(db: &Database) {
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let other = new_user(db).await;
    let mut created = Vec::new();
    for n in 0..5 {
        let task = task_for(owner.id, TaskId::new(), &format!("task {n}"));
        tasks.insert(&task).await.unwrap();
        created.push(task.id);
    }
    tasks
        .insert(&task_for(other.id, TaskId::new(), "not yours"))
        .await
        .unwrap();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page: Vec<TaskId> = tasks
            .list(owner.id, cursor, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        let Some(last) = page.last().copied() else {
            break;
        };
        cursor = Some(last);
        pages.push(page);
    }

    created.reverse();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(pages.concat(), created, "UUIDv7 ids come back newest first");
}

async fn task_order_is_uuid_byte_order(db: &Database) {
    // Random v4 ids spread over the whole byte range, so a backend that
    // compared uuids any other way than byte-wise would show it here.
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let mut ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    ids.push(Uuid::from_bytes([0x80; 16]));
    ids.push(Uuid::from_bytes([0x7f; 16]));
    for id in &ids {
        tasks
            .insert(&task_for(owner.id, TaskId::from_uuid(*id), "ordered"))
            .await
            .unwrap();
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));

    let listed: Vec<Uuid> = tasks
        .list(owner.id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.as_uuid())
        .collect();
    assert_eq!(listed, ids);

    let cursor = ids[10];
    let below: Vec<Uuid> = tasks
        .list(owner.id, Some(TaskId::from_uuid(cursor)), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.as_uuid())
        .collect();
    assert_eq!(below, ids[11..]);
}
