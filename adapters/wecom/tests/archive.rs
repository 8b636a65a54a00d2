//! The sidecar archive source against a loopback sidecar speaking the documented contract.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use groupguard_wecom::archive::{ArchiveError, ArchiveSource, SidecarSource};
use serde_json::{Value, json};

type Requests = Arc<Mutex<Vec<Value>>>;

async fn pull(
    State(requests): State<Requests>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    requests.lock().unwrap().push(body.clone());
    match body["seq"].as_u64() {
        Some(0) => (
            StatusCode::OK,
            Json(json!({ "next_seq": 3, "records": [
                { "seq": 1, "msgid": "a", "publickey_ver": 3, "record": { "msgid": "a", "msgtype": "text" } },
                { "seq": 2, "msgid": "b", "publickey_ver": 2, "error": { "sdk_code": 10007 } },
                { "seq": 3, "msgid": "c", "publickey_ver": 3, "record": { "msgid": "c", "msgtype": "image" } },
            ]})),
        ),
        Some(3) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "sdk_code": 10001, "retryable": true })),
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "sdk_code": 10009, "retryable": false })),
        ),
    }
}

#[tokio::test]
async fn records_arrive_undecryptable_ones_are_skipped_and_errors_are_classified() {
    let requests = Requests::default();
    let app = Router::new()
        .route("/v1/pull", post(pull))
        .with_state(Arc::clone(&requests));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let source = SidecarSource::new(&base, "wwcorp");

    let batch = source.pull(0, 1000).await.unwrap();
    let ids: Vec<&str> = batch
        .records
        .iter()
        .filter_map(|r| r["msgid"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["a", "c"],
        "the record that did not decrypt does not block the cursor"
    );
    assert_eq!(batch.next, 3);
    assert_eq!(
        requests.lock().unwrap()[0],
        json!({ "corp": "wwcorp", "seq": 0, "limit": 1000, "timeout_s": 5 })
    );
    assert!(matches!(
        source.pull(3, 1000).await,
        Err(ArchiveError::Unavailable(_))
    ));
    let refused = source.pull(9, 1000).await.unwrap_err();
    assert!(
        matches!(&refused, ArchiveError::Refused(m) if m.contains("10009")),
        "{refused}"
    );
    let dead = SidecarSource::new("http://127.0.0.1:9", "wwcorp");
    assert!(matches!(
        dead.pull(0, 10).await,
        Err(ArchiveError::Unavailable(_))
    ));
}
