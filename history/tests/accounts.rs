//! The account store (users, groups, memberships), each test on SQLite and PostgreSQL.

mod common;

use common::{Backend, TestDb};
use roost_history::{Account, AccountError};

common::on_both_backends!(
    users_add_list_passwd_disable_delete,
    groups_and_memberships,
    bad_ids_and_names_are_refused,
);

async fn users_add_list_passwd_disable_delete(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .add_user("alice", "Alice A.", "$hash1", false)
        .await
        .unwrap();
    store.add_user("bob", "", "$hash2", true).await.unwrap();
    assert!(matches!(
        store.add_user("alice", "", "$x", false).await,
        Err(AccountError::UserExists(_))
    ));
    let users = store.users().await.unwrap();
    assert_eq!(
        users,
        vec![
            Account {
                id: "alice".into(),
                display_name: "Alice A.".into(),
                disabled: false,
                admin: false
            },
            Account {
                id: "bob".into(),
                display_name: "bob".into(),
                disabled: false,
                admin: true
            },
        ]
    );
    let c = store.credentials("alice").await.unwrap().unwrap();
    assert_eq!(c.password_hash, "$hash1");
    store.set_password("alice", "$hash3").await.unwrap();
    store.set_disabled("alice", true).await.unwrap();
    let c = store.credentials("alice").await.unwrap().unwrap();
    assert_eq!(c.password_hash, "$hash3");
    assert!(c.disabled && !c.admin);
    assert!(store.credentials("nobody").await.unwrap().is_none());
    assert!(store.credentials("not valid!").await.unwrap().is_none());
    assert!(matches!(
        store.set_password("nobody", "$x").await,
        Err(AccountError::UserNotFound(_))
    ));
    store.delete_user("alice").await.unwrap();
    assert!(store.user("alice").await.unwrap().is_none());
    assert!(matches!(
        store.delete_user("alice").await,
        Err(AccountError::UserNotFound(_))
    ));
    // Survives a reconnect (and the migrations run again as a no-op).
    drop(store);
    let store = db.store().await;
    assert_eq!(store.users().await.unwrap().len(), 1);
}

async fn groups_and_memberships(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.add_user("alice", "", "$h", false).await.unwrap();
    store.add_user("bob", "", "$h", false).await.unwrap();
    store.add_group("family", "The family").await.unwrap();
    store.add_group("empty", "").await.unwrap();
    assert!(matches!(
        store.add_group("family", "").await,
        Err(AccountError::GroupExists(_))
    ));
    store.add_member("family", "alice").await.unwrap();
    store.add_member("family", "bob").await.unwrap();
    store.add_member("family", "bob").await.unwrap(); // idempotent
    assert!(matches!(
        store.add_member("nogroup", "bob").await,
        Err(AccountError::GroupNotFound(_))
    ));
    assert!(matches!(
        store.add_member("family", "nobody").await,
        Err(AccountError::UserNotFound(_))
    ));
    let groups = store.groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].id, "empty");
    assert!(groups[0].members.is_empty());
    assert_eq!(groups[1].display_name, "The family");
    assert_eq!(groups[1].members, vec!["alice", "bob"]);
    assert_eq!(store.groups_of("alice").await.unwrap(), vec!["family"]);
    store.remove_member("family", "alice").await.unwrap();
    assert!(matches!(
        store.remove_member("family", "alice").await,
        Err(AccountError::NotMember { .. })
    ));
    assert!(store.groups_of("alice").await.unwrap().is_empty());
    // Deleting a user or a group takes its memberships with it.
    store.delete_user("bob").await.unwrap();
    store.add_user("bob", "", "$h", false).await.unwrap();
    assert!(store.groups_of("bob").await.unwrap().is_empty());
    store.add_member("family", "bob").await.unwrap();
    store.delete_group("family").await.unwrap();
    store.add_group("family", "").await.unwrap();
    assert!(store.groups_of("bob").await.unwrap().is_empty());
    assert!(matches!(
        store.delete_group("nogroup").await,
        Err(AccountError::GroupNotFound(_))
    ));
}

async fn bad_ids_and_names_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let e = store
        .add_user("has space", "", "$h", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_id");
    let e = store.add_user("a\0b", "", "$h", false).await.unwrap_err();
    assert_eq!(e.code(), "invalid_id");
    let e = store
        .add_user("ok", "line\nbreak", "$h", false)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_display_name");
    let e = store.add_group("ok", &"x".repeat(101)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_display_name");
    assert!(store.users().await.unwrap().is_empty());
}
