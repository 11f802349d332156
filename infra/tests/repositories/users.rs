//! `UserRepository`: unique emails, lookups and password-hash upgrades.

use portcullis_domain::email::Email;
use portcullis_domain::ids::UserId;
use portcullis_domain::password::PasswordHash;
use portcullis_domain::user::{InsertUserError, UserRepository};
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{contract_tests, insert_user, new_user, user_with_email};

contract_tests!(
    email_is_unique_case_insensitively,
    concurrent_signups_with_one_email_yield_one_account,
    users_are_found_by_email_and_id,
    password_hash_is_updated,
    profiles_are_found_and_unaffected_by_password_changes,
);

async fn email_is_unique_case_insensitively(db: &Database) {
    insert_user(db, user_with_email("ada@example.com"))
        .await
        .unwrap();

    let result = insert_user(db, user_with_email("  ADA@Example.COM ")).await;

    assert!(
        matches!(result, Err(InsertUserError::EmailTaken)),
        "{result:?}"
    );
}

async fn concurrent_signups_with_one_email_yield_one_account(db: &Database) {
    for round in 0..5 {
        let email = format!("race{round}@example.com");
        let mut attempts = JoinSet::new();
        for _ in 0..2 {
            let db = db.clone();
            let user = user_with_email(&email);
            attempts.spawn(async move { insert_user(&db, user).await });
        }
        let results = attempts.join_all().await;

        let created = results.iter().filter(|r| r.is_ok()).count();
        let taken = results
            .iter()
            .filter(|r| matches!(r, Err(InsertUserError::EmailTaken)))
            .count();
        assert_eq!((created, taken), (1, 1), "{results:?}");
    }
}

async fn users_are_found_by_email_and_id(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;

    let by_email = users
        .find_by_email(&user.email)
        .await
        .unwrap()
        .expect("found by email");
    let by_id = users
        .find_by_id(user.id)
        .await
        .unwrap()
        .expect("found by id");

    for found in [by_email, by_id] {
        assert_eq!(found.id, user.id);
        assert_eq!(found.email, user.email);
        assert_eq!(found.password_hash, user.password_hash);
        assert_eq!(found.created_at, user.created_at);
        assert_eq!(found.updated_at, user.updated_at);
    }
    let stranger = Email::parse("nobody@example.com").unwrap();
    assert!(users.find_by_email(&stranger).await.unwrap().is_none());
    assert!(users.find_by_id(UserId::new()).await.unwrap().is_none());
}

async fn password_hash_is_updated(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;
    let upgraded = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3aGFzaA".to_owned());
    let later = user.updated_at + Duration::seconds(5);

    users
        .update_password_hash(user.id, &upgraded, later)
        .await
        .unwrap();

    let stored = users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, upgraded);
    assert_eq!(stored.updated_at, later);
    assert_eq!(stored.created_at, user.created_at);
}

async fn profiles_are_found_and_unaffected_by_password_changes(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;
    assert_eq!(users.find_profile(UserId::new()).await.unwrap(), None);

    let profile = users.find_profile(user.id).await.unwrap().unwrap();
    assert_eq!(profile, user.profile());
    // A second repository over the same database reads it from storage.
    assert_eq!(
        db.users().find_profile(user.id).await.unwrap(),
        Some(user.profile())
    );

    let upgraded = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3aGFzaA".to_owned());
    users
        .update_password_hash(user.id, &upgraded, user.updated_at + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(users.find_profile(user.id).await.unwrap(), Some(profile));
}
