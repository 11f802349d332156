//! `UserRepository`: unique emails, lookups and password-hash upgrades.

use portcullis_domain::email::Email;
use portcullis_domain::ids::UserId;
use portcullis_domain::password::PasswordHash;
use portcullis_domain::user::{InsertUserError, UserRepository};
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use portcullis_domain::session::SessionRepository as _;

use crate::support::{SignUp, contract_tests, insert_user, new_user, user_with_email};

contract_tests!(
    email_is_unique_case_insensitively,
    concurrent_signups_with_one_email_yield_one_account,
    a_wave_of_signups_gives_each_email_one_account_with_its_session,
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

/// Many sign-ups at once (on SQLite they share one transaction), some for
/// the same address and some for one already taken: each address gets one
/// account, every other attempt hears `EmailTaken`, and each account has
/// its first session and token stored; nothing of a refused attempt is.
async fn a_wave_of_signups_gives_each_email_one_account_with_its_session(db: &Database) {
    insert_user(db, user_with_email("wave-taken@example.com"))
        .await
        .unwrap();
    let mut attempts = JoinSet::new();
    for i in 0..48 {
        let email = if i % 4 == 0 {
            "wave-taken@example.com".to_owned()
        } else {
            format!("wave{}@example.com", i % 16)
        };
        let db = db.clone();
        attempts.spawn(async move {
            let signup = SignUp::of(user_with_email(&email));
            let result = signup.insert(&db).await;
            (email, signup, result)
        });
    }
    let results = attempts.join_all().await;

    let users = db.users();
    let sessions = db.sessions();
    let mut created = std::collections::HashMap::new();
    for (email, signup, result) in &results {
        match result {
            Ok(()) => {
                *created.entry(email.clone()).or_insert(0) += 1;
                let (_, session) = sessions
                    .find_by_refresh_token(&signup.first)
                    .await
                    .unwrap()
                    .expect("the account's first token is stored");
                assert_eq!(session, signup.session);
                let stored = users
                    .find_by_email(&Email::parse(email).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.id, signup.user.id);
            }
            Err(InsertUserError::EmailTaken) => {
                assert!(
                    sessions
                        .find_by_refresh_token(&signup.first)
                        .await
                        .unwrap()
                        .is_none(),
                    "a refused sign-up stores no session"
                );
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created.get("wave-taken@example.com"), None);
    for n in 0..16 {
        if n % 4 != 0 {
            assert_eq!(
                created.get(&format!("wave{n}@example.com")),
                Some(&1),
                "wave{n}"
            );
        }
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
