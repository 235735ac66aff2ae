//! Who a user shares a conversation or a group with (`Store::contacts`, for presence
//! visibility) and which accounts are disabled or gone (`disabled_users`,
//! `existing_users`, for ending connections), each test on SQLite and PostgreSQL.

mod common;

use std::collections::HashSet;

use common::{msg, Backend, TestDb};

common::on_both_backends!(
    contacts_are_dm_partners_and_group_members,
    disabled_and_existing_accounts,
);

fn set(users: &[&str]) -> HashSet<String> {
    users.iter().map(|u| u.to_string()).collect()
}

async fn contacts_are_dm_partners_and_group_members(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store
        .store_batch(&[
            msg("dm:alice:bob", "bob", "m-1"),
            msg("dm:alice:carol", "alice", "m-2"),
            msg("dm:dave:erin", "dave", "m-3"),
            msg("grp:chess", "frank", "m-4"),
            msg("grp:poker", "gina", "m-5"),
        ])
        .await
        .unwrap();
    // hank read the chess group without writing: a member the store knows.
    store
        .mark_read(&common::conv("grp:chess"), "hank", 1)
        .await
        .unwrap();
    // ivy is in chess by the account store only.
    store.add_user("ivy", "", "$h", false).await.unwrap();
    store.add_group("chess", "").await.unwrap();
    store.add_member("chess", "ivy").await.unwrap();

    let chess = vec!["chess".to_owned()];
    assert_eq!(
        store.contacts("alice", &chess).await.unwrap(),
        set(&["bob", "carol", "frank", "hank", "ivy"])
    );
    assert_eq!(
        store.contacts("alice", &[]).await.unwrap(),
        set(&["bob", "carol"])
    );
    // Not oneself, whatever the group says.
    assert_eq!(
        store.contacts("frank", &chess).await.unwrap(),
        set(&["hank", "ivy"])
    );
    assert!(store.contacts("nobody", &[]).await.unwrap().is_empty());
    // Invalid group ids are ignored, not an error.
    let odd = vec!["not valid!".to_owned()];
    assert!(store.contacts("nobody", &odd).await.unwrap().is_empty());
}

async fn disabled_and_existing_accounts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert!(store.disabled_users().await.unwrap().is_empty());
    for user in ["alice", "bob", "carol"] {
        store.add_user(user, "", "$h", false).await.unwrap();
    }
    store.set_disabled("bob", true).await.unwrap();
    assert_eq!(store.disabled_users().await.unwrap(), set(&["bob"]));
    store.delete_user("carol").await.unwrap();
    let asked: Vec<String> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(
        store.existing_users(&asked).await.unwrap(),
        set(&["alice", "bob"])
    );
    assert!(store.existing_users(&[]).await.unwrap().is_empty());
}
