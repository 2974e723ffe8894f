//! The STS + IAM source against moto: an account's IAM data seeded through the IAM API,
//! read back through AssumeRole (with an ExternalId) into that account.

use accessflow_testkit::{moto, seed};

use accessflow_shared::ports::{AccountLocator, PortError};
use serde_json::Value;

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// Seeds `testkit/fixtures/iam_source_account.json`: alice (S3Read attached, an inline
/// deny on IAM), bob (admin through the group admins), and the role partner-audit
/// (assumable from 210987654321, inline S3 read, capped by the S3Boundary boundary; moto
/// 5.2 has no PutUserPermissionsBoundary, so boundaries are seeded on a role only).
async fn seed(account: &str) {
    seed::seed_fixture(account, "iam_source_account.json")
        .await
        .expect("seed the account");
}

fn locator(account: &str) -> AccountLocator {
    AccountLocator {
        customer: "acme".into(),
        account: account.into(),
        role_arn: Some(format!("arn:aws:iam::{account}:role/accessflow-reader")),
        external_id: Some("acme-external-id".into()),
        fixture_dir: None,
        trusted_accounts: Vec::new(),
        regions: Vec::new(),
    }
}

fn find<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e[field] == name)
        .unwrap_or_else(|| panic!("no {field}={name} in {list}"))
}

#[tokio::test]
async fn fetches_authorization_details_and_credential_report() {
    let (backend, _) = moto::backend("iam").await;
    let account = moto::unique_account();
    seed(&account).await;
    let iam = backend.ports().iam;
    let raw = iam.fetch_account(&locator(&account)).await.unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();

    let alice = find(&doc["UserDetailList"], "UserName", "alice");
    assert_eq!(alice["Arn"], format!("arn:aws:iam::{account}:user/alice"));
    assert_eq!(
        alice["UserPolicyList"][0]["PolicyDocument"]["Statement"][0]["Effect"],
        "Deny"
    );
    assert_eq!(alice["AttachedManagedPolicies"][0]["PolicyName"], "S3Read");
    assert!(alice["CreateDate"].as_str().unwrap().ends_with("+00:00"));
    let bob = find(&doc["UserDetailList"], "UserName", "bob");
    assert_eq!(bob["GroupList"][0], "admins");
    let admins = find(&doc["GroupDetailList"], "GroupName", "admins");
    assert_eq!(admins["AttachedManagedPolicies"][0]["PolicyArn"], ADMIN);
    let role = find(&doc["RoleDetailList"], "RoleName", "partner-audit");
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::210987654321:root"
    );
    assert_eq!(
        role["PermissionsBoundary"]["PermissionsBoundaryArn"],
        format!("arn:aws:iam::{account}:policy/S3Boundary")
    );
    assert_eq!(
        role["PermissionsBoundary"]["PermissionsBoundaryType"],
        "PermissionsBoundaryPolicy"
    );
    assert_eq!(
        role["RolePolicyList"][0]["PolicyDocument"]["Statement"][0]["Action"][0],
        "s3:GetObject"
    );
    let s3_read = find(&doc["Policies"], "PolicyName", "S3Read");
    let default = s3_read["PolicyVersionList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["IsDefaultVersion"] == true)
        .unwrap();
    assert_eq!(
        default["Document"]["Statement"][0]["Action"][1],
        "s3:ListBucket"
    );
    // AWS managed policies in use are included (moto loads them with
    // MOTO_IAM_LOAD_MANAGED_POLICIES=true, which the harness sets).
    let admin = find(&doc["Policies"], "Arn", ADMIN);
    assert_eq!(admin["PolicyName"], "AdministratorAccess");

    let report = String::from_utf8(raw.credential_report).unwrap();
    assert!(
        report.starts_with("user,arn,user_creation_time"),
        "{report}"
    );
    assert!(report.contains(&format!("arn:aws:iam::{account}:user/alice")));

    // Another account sees none of it.
    let other = moto::unique_account();
    let raw = iam.fetch_account(&locator(&other)).await.unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();
    assert!(doc["UserDetailList"].as_array().unwrap().is_empty());

    let counts = backend.request_counts();
    assert!(counts["sts"] >= 2, "{counts:?}");
    assert!(counts["iam"] >= 4, "{counts:?}");
}

#[tokio::test]
async fn a_locator_without_a_role_is_invalid() {
    let (backend, _) = moto::backend("iamnorole").await;
    let mut l = locator("123456789012");
    l.role_arn = None;
    assert!(matches!(
        backend.ports().iam.fetch_account(&l).await,
        Err(PortError::Invalid { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// What moto cannot show: throttling, pagination by Marker, the service-last-accessed jobs
// and a role that refuses us. A small fake of the STS/IAM query API on 127.0.0.1 answers
// with the XML AWS sends.

mod fake {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

    #[derive(Default)]
    pub struct State {
        pub calls: Mutex<HashMap<String, u32>>,
        pub throttles_left: AtomicU32,
        /// Answer GenerateServiceLastAccessedDetails with a bare HTTP 500 (no error code),
        /// as an AWS outage (and moto) does.
        pub last_accessed_500: std::sync::atomic::AtomicBool,
    }

    fn ok(action: &str, ns: &str, result: &str) -> (u16, String) {
        (
            200,
            format!(
                "<{action}Response xmlns=\"{ns}\"><{action}Result>{result}</{action}Result>\
                 <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
            ),
        )
    }

    fn error(status: u16, code: &str, message: &str) -> (u16, String) {
        (
            status,
            format!(
                "<ErrorResponse xmlns=\"{IAM_NS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
            ),
        )
    }

    fn user(name: &str, doc: &str) -> String {
        format!(
            "<member><Path>/</Path><UserName>{name}</UserName><UserId>AID{name}</UserId>\
             <Arn>arn:aws:iam::111122223333:user/{name}</Arn><CreateDate>2020-01-02T03:04:05Z</CreateDate>\
             <UserPolicyList><member><PolicyName>inline</PolicyName><PolicyDocument>{doc}</PolicyDocument></member></UserPolicyList>\
             <GroupList/><AttachedManagedPolicies/><Tags/></member>"
        )
    }

    fn respond(state: &State, form: &HashMap<String, String>) -> (u16, String) {
        let action = form.get("Action").cloned().unwrap_or_default();
        let n = {
            let mut calls = state.calls.lock().unwrap();
            let n = calls.entry(action.clone()).or_default();
            *n += 1;
            *n
        };
        let sts = "https://sts.amazonaws.com/doc/2011-06-15/";
        match action.as_str() {
            "AssumeRole" => {
                if form.get("RoleArn").is_some_and(|r| r.contains("denied")) {
                    return error(403, "AccessDenied", "not authorized to perform sts:AssumeRole");
                }
                assert_eq!(form.get("ExternalId").map(String::as_str), Some("xid"));
                ok(
                    "AssumeRole",
                    sts,
                    "<Credentials><AccessKeyId>ASIAFAKE</AccessKeyId><SecretAccessKey>s</SecretAccessKey>\
                     <SessionToken>t</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                     <AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>\
                     <Arn>arn:aws:sts::111122223333:assumed-role/reader/s</Arn></AssumedRoleUser>",
                )
            }
            "GetAccountAuthorizationDetails" => {
                if state
                    .throttles_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1))
                    .is_ok()
                {
                    return error(400, "Throttling", "Rate exceeded");
                }
                let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
                match form.get("Marker").map(String::as_str) {
                    None => ok(
                        &action,
                        IAM_NS,
                        &format!(
                            "<IsTruncated>true</IsTruncated><Marker>page-2</Marker>\
                             <UserDetailList>{}</UserDetailList><GroupDetailList/><RoleDetailList/><Policies/>",
                            user("alice", encoded)
                        ),
                    ),
                    Some("page-2") => ok(
                        &action,
                        IAM_NS,
                        &format!(
                            "<IsTruncated>false</IsTruncated>\
                             <UserDetailList>{}</UserDetailList><GroupDetailList/><RoleDetailList/><Policies/>",
                            user("bob", encoded)
                        ),
                    ),
                    Some(other) => error(400, "InvalidInput", &format!("bad marker {other}")),
                }
            }
            "GenerateCredentialReport" => {
                let state = if n == 1 { "STARTED" } else { "COMPLETE" };
                ok(&action, IAM_NS, &format!("<State>{state}</State>"))
            }
            "GetCredentialReport" => ok(
                &action,
                IAM_NS,
                // base64 of "user,arn\nalice,arn:aws:iam::111122223333:user/alice\n"
                "<Content>dXNlcixhcm4KYWxpY2UsYXJuOmF3czppYW06OjExMTEyMjIyMzMzMzp1c2VyL2FsaWNlCg==</Content>\
                 <ReportFormat>text/csv</ReportFormat><GeneratedTime>2020-01-01T00:00:00Z</GeneratedTime>",
            ),
            "GenerateServiceLastAccessedDetails" => {
                if state.last_accessed_500.load(Ordering::SeqCst) {
                    return (500, String::new());
                }
                ok(&action, IAM_NS, "<JobId>job-1</JobId>")
            }
            "GetServiceLastAccessedDetails" => {
                let dates = "<JobCreationDate>2020-01-01T00:00:00Z</JobCreationDate>\
                             <JobCompletionDate>2020-01-01T00:00:05Z</JobCompletionDate>";
                if n == 1 {
                    return ok(
                        &action,
                        IAM_NS,
                        &format!("<JobStatus>IN_PROGRESS</JobStatus>{dates}<ServicesLastAccessed/><IsTruncated>false</IsTruncated>"),
                    );
                }
                ok(
                    &action,
                    IAM_NS,
                    &format!(
                        "<JobStatus>COMPLETED</JobStatus><JobType>SERVICE_LEVEL</JobType>{dates}\
                         <ServicesLastAccessed><member><ServiceName>Amazon S3</ServiceName>\
                         <ServiceNamespace>s3</ServiceNamespace><LastAuthenticated>2020-01-01T00:00:00Z</LastAuthenticated>\
                         <LastAuthenticatedEntity>arn:aws:iam::111122223333:user/alice</LastAuthenticatedEntity>\
                         <TotalAuthenticatedEntities>1</TotalAuthenticatedEntities></member>\
                         <member><ServiceName>AWS Lambda</ServiceName><ServiceNamespace>lambda</ServiceNamespace>\
                         <TotalAuthenticatedEntities>0</TotalAuthenticatedEntities></member></ServicesLastAccessed>\
                         <IsTruncated>false</IsTruncated>"
                    ),
                )
            }
            other => error(400, "InvalidAction", &format!("fake has no {other}")),
        }
    }

    fn form(body: &str) -> HashMap<String, String> {
        body.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    accessflow_shared::aws::percent_decode(&v.replace('+', " ")),
                )
            })
            .collect()
    }

    /// Starts the fake; returns its URL.
    pub async fn start(state: Arc<State>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        let mut first = true;
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" && !first {
                                break;
                            }
                            first = false;
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0u8; length];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let (status, xml) = respond(&state, &form(&String::from_utf8_lossy(&body)));
                        let reason = if status == 200 { "OK" } else { "Error" };
                        let response = format!(
                            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\r\n{xml}",
                            xml.len()
                        );
                        if write.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }
}

async fn fake_backend(state: std::sync::Arc<fake::State>) -> accessflow_shared::aws::AwsBackend {
    fake_backend_with(state, |_| {}).await
}

async fn fake_backend_with(
    state: std::sync::Arc<fake::State>,
    adjust: impl FnOnce(&mut accessflow_shared::aws::AwsSettings),
) -> accessflow_shared::aws::AwsBackend {
    let url = fake::start(state).await;
    let mut settings = accessflow_shared::aws::AwsSettings::new("unused-bucket");
    settings.region = Some("us-east-1".into());
    settings.endpoint_url = Some(url);
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.retry_max_elapsed = std::time::Duration::from_secs(20);
    // The fake speaks STS and IAM only: no resource inventory.
    settings.collect_resources = false;
    adjust(&mut settings);
    accessflow_shared::aws::AwsBackend::connect(&settings)
        .await
        .unwrap()
}

fn fake_locator(role: &str) -> AccountLocator {
    AccountLocator {
        customer: "acme".into(),
        account: "111122223333".into(),
        role_arn: Some(format!("arn:aws:iam::111122223333:role/{role}")),
        external_id: Some("xid".into()),
        fixture_dir: None,
        trusted_accounts: Vec::new(),
        regions: Vec::new(),
    }
}

#[tokio::test]
async fn throttling_is_retried_and_pages_are_merged() {
    let state = std::sync::Arc::new(fake::State::default());
    state
        .throttles_left
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let backend = fake_backend(state.clone()).await;
    let raw = backend
        .ports()
        .iam
        .fetch_account(&fake_locator("reader"))
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();
    let users: Vec<&str> = doc["UserDetailList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["alice", "bob"]);
    assert_eq!(
        doc["UserDetailList"][0]["UserPolicyList"][0]["PolicyDocument"]["Statement"][0]["Action"],
        "s3:*"
    );
    assert_eq!(
        doc["UserDetailList"][0]["CreateDate"],
        "2020-01-02T03:04:05+00:00"
    );
    assert!(doc["Policies"].as_array().unwrap().is_empty());
    assert_eq!(
        String::from_utf8(raw.credential_report).unwrap(),
        "user,arn\nalice,arn:aws:iam::111122223333:user/alice\n"
    );
    let calls = state.calls.lock().unwrap().clone();
    assert_eq!(
        calls["GetAccountAuthorizationDetails"], 4,
        "2 throttled + 2 pages"
    );
    assert_eq!(
        calls["GenerateCredentialReport"], 2,
        "polled until COMPLETE"
    );
    let stats = backend.iam_retry_stats();
    assert_eq!(stats.throttle_retries(), 2);
    assert_eq!(backend.throttle_counts()["iam"], 2);
    assert_eq!(
        backend.operation_counts()["iam:GetAccountAuthorizationDetails"],
        4
    );
    assert_eq!(backend.request_counts()["sts"], 1);

    // The session is cached: a second fetch assumes the role no more.
    backend
        .ports()
        .iam
        .fetch_account(&fake_locator("reader"))
        .await
        .unwrap();
    assert_eq!(state.calls.lock().unwrap()["AssumeRole"], 1);
}

#[tokio::test]
async fn last_accessed_jobs_are_polled_to_completion() {
    let state = std::sync::Arc::new(fake::State::default());
    let backend = fake_backend(state.clone()).await;
    let json = backend
        .ports()
        .iam
        .last_accessed(
            &fake_locator("reader"),
            "arn:aws:iam::111122223333:user/alice",
        )
        .await
        .unwrap()
        .expect("a report");
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["JobStatus"], "COMPLETED");
    assert_eq!(v["ServicesLastAccessed"][0]["ServiceNamespace"], "s3");
    assert_eq!(
        v["ServicesLastAccessed"][0]["LastAuthenticated"],
        "2020-01-01T00:00:00+00:00"
    );
    assert!(v["ServicesLastAccessed"][1]
        .get("LastAuthenticated")
        .is_none());
    assert_eq!(
        state.calls.lock().unwrap()["GetServiceLastAccessedDetails"],
        2
    );
}

/// A bare 500 is an outage, not "not implemented": it is retried and then fails the
/// call, so no "no usage data" answer is cached and the unused-access findings are not
/// silently dropped.
#[tokio::test]
async fn a_500_without_an_error_code_is_an_outage_not_a_missing_api() {
    let state = std::sync::Arc::new(fake::State::default());
    state
        .last_accessed_500
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let backend = fake_backend_with(state.clone(), |s| {
        s.retry_max_elapsed = std::time::Duration::from_secs(2)
    })
    .await;
    let err = backend
        .ports()
        .iam
        .last_accessed(
            &fake_locator("reader"),
            "arn:aws:iam::111122223333:user/alice",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Transient { .. }), "{err:?}");
    assert!(
        state.calls.lock().unwrap()["GenerateServiceLastAccessedDetails"] >= 2,
        "retried"
    );
}

/// `ACCESSFLOW_IAM_LAST_ACCESSED=off` (emulators): no usage data, and no IAM call for it.
#[tokio::test]
async fn last_accessed_turned_off_makes_no_call() {
    let state = std::sync::Arc::new(fake::State::default());
    let backend = fake_backend_with(state.clone(), |s| s.last_accessed = false).await;
    let got = backend
        .ports()
        .iam
        .last_accessed(
            &fake_locator("reader"),
            "arn:aws:iam::111122223333:user/alice",
        )
        .await
        .unwrap();
    assert_eq!(got, None);
    assert!(state.calls.lock().unwrap().is_empty());
}

/// The role's account matches the locator's, yet the identity STS hands back is in
/// another account (here the fake always answers 111122223333): nothing is collected.
#[tokio::test]
async fn an_assumed_identity_in_another_account_is_refused() {
    let state = std::sync::Arc::new(fake::State::default());
    let backend = fake_backend(state.clone()).await;
    let mut locator = fake_locator("reader");
    locator.account = "444455556666".into();
    locator.role_arn = Some("arn:aws:iam::444455556666:role/reader".into());
    let err = backend
        .ports()
        .iam
        .fetch_account(&locator)
        .await
        .unwrap_err();
    let PortError::Invalid { message, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert!(message.contains("not in account 444455556666"), "{message}");
    assert!(message.contains("tenants file"), "{message}");
    let calls = state.calls.lock().unwrap().clone();
    assert_eq!(calls.get("GetAccountAuthorizationDetails"), None);

    // The right account still works through the same backend (sessions are per account).
    backend
        .ports()
        .iam
        .fetch_account(&fake_locator("reader"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_role_that_refuses_us_is_permanent() {
    let state = std::sync::Arc::new(fake::State::default());
    let backend = fake_backend(state.clone()).await;
    let err = backend
        .ports()
        .iam
        .fetch_account(&fake_locator("denied"))
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Permanent { .. }), "{err:?}");
    assert_eq!(state.calls.lock().unwrap()["AssumeRole"], 1, "not retried");
}

/// A fixture account (authorization details as the embedded backend reads them) seeded
/// into moto's IAM and read back through AssumeRole comes out the same.
#[tokio::test]
async fn a_fixture_account_round_trips_through_moto() {
    let (backend, _) = moto::backend("iamseed").await;
    let account = moto::unique_account();
    let fixture: Value = serde_json::json!({
        "UserDetailList": [{
            "Path": "/", "UserName": "obama", "Arn": "arn:aws:iam::012345678901:user/obama",
            "GroupList": ["admin"],
            "UserPolicyList": [{"PolicyName": "deny-iam", "PolicyDocument":
                {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:*", "Resource": "*"}]}}],
            "AttachedManagedPolicies": [{"PolicyName": "NotYourPolicy",
                "PolicyArn": "arn:aws:iam::012345678901:policy/NotYourPolicy"}],
            "Tags": [{"Key": "team", "Value": "red"}]
        }],
        "GroupDetailList": [{
            "Path": "/", "GroupName": "admin", "Arn": "arn:aws:iam::012345678901:group/admin",
            "GroupPolicyList": [],
            "AttachedManagedPolicies": [{"PolicyName": "AdministratorAccess",
                "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]
        }],
        "RoleDetailList": [{
            "Path": "/", "RoleName": "MyRole", "Arn": "arn:aws:iam::012345678901:role/MyRole",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ssm.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "RolePolicyList": [{"PolicyName": "EC2-IAM-example", "PolicyDocument":
                "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22iam%3APassRole%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D"}],
            "AttachedManagedPolicies": [],
            "PermissionsBoundary": {"PermissionsBoundaryType": "PermissionsBoundaryPolicy",
                "PermissionsBoundaryArn": "arn:aws:iam::012345678901:policy/NotYourPolicy"}
        }],
        "Policies": [{
            "PolicyName": "NotYourPolicy", "Arn": "arn:aws:iam::012345678901:policy/NotYourPolicy",
            "Path": "/", "DefaultVersionId": "v9",
            "PolicyVersionList": [{"VersionId": "v9", "IsDefaultVersion": true, "Document":
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                  "Action": ["s3:PutObject", "s3:PutObjectAcl"], "Resource": "arn:aws:s3:::mybucket/*"}]}}]
        }]
    });
    let locator = AccountLocator {
        customer: "acme".into(),
        account: account.clone(),
        role_arn: Some(format!("arn:aws:iam::{account}:role/accessflow-reader")),
        external_id: Some("x".into()),
        fixture_dir: None,
        trusted_accounts: Vec::new(),
        regions: Vec::new(),
    };
    let iam = backend.iam().iam_client(&locator).await.unwrap();
    let summary = seed::seed_account(&iam, &account, &fixture).await.unwrap();
    assert_eq!(
        (
            summary.policies,
            summary.groups,
            summary.users,
            summary.roles
        ),
        (1, 1, 1, 1)
    );
    // Seeding again creates nothing new and fails on nothing.
    let again = seed::seed_account(&iam, &account, &fixture).await.unwrap();
    assert_eq!(again, Default::default());

    let raw = backend.ports().iam.fetch_account(&locator).await.unwrap();
    let doc: Value = serde_json::from_slice(&raw.authorization_details).unwrap();
    let user = find(&doc["UserDetailList"], "UserName", "obama");
    assert_eq!(user["GroupList"][0], "admin");
    assert_eq!(
        user["AttachedManagedPolicies"][0]["PolicyArn"],
        format!("arn:aws:iam::{account}:policy/NotYourPolicy")
    );
    assert_eq!(
        user["UserPolicyList"][0]["PolicyDocument"],
        fixture["UserDetailList"][0]["UserPolicyList"][0]["PolicyDocument"]
    );
    assert_eq!(user["Tags"][0]["Value"], "red");
    let role = find(&doc["RoleDetailList"], "RoleName", "MyRole");
    assert_eq!(
        role["AssumeRolePolicyDocument"],
        fixture["RoleDetailList"][0]["AssumeRolePolicyDocument"]
    );
    assert_eq!(
        role["RolePolicyList"][0]["PolicyDocument"]["Statement"][0]["Action"],
        "iam:PassRole"
    );
    assert_eq!(
        role["PermissionsBoundary"]["PermissionsBoundaryArn"],
        format!("arn:aws:iam::{account}:policy/NotYourPolicy")
    );
    let group = find(&doc["GroupDetailList"], "GroupName", "admin");
    assert_eq!(
        group["AttachedManagedPolicies"][0]["PolicyName"],
        "AdministratorAccess"
    );
    let policy = find(&doc["Policies"], "PolicyName", "NotYourPolicy");
    assert_eq!(
        policy["PolicyVersionList"][0]["Document"],
        fixture["Policies"][0]["PolicyVersionList"][0]["Document"]
    );
}

/// The resource inventory (on by default): the account's buckets, customer managed keys,
/// queues, topics, secrets, functions, repositories and tables come back with their
/// policies, the account's and each bucket's Block Public Access, the ACL grants to
/// everyone, tags and KMS grants, in every region the customer lists (a queue in a second
/// region); the analysis reads it (the queue, secret, function, repository and table
/// shared with another account are cross-account, the default topic policy is not); the
/// requests are counted, as the customer role's. Access denied and paging are the next
/// tests'.
#[tokio::test]
async fn collects_the_resource_inventory_when_asked() {
    use aws_sdk_iam::config::Region;
    let account = moto::unique_account();
    seed(&account).await;
    let base = moto::settings(&moto::unique_prefix("res"));
    let endpoint = base.endpoint_url.clone().expect("moto endpoint");
    // one SDK configuration of the customer's account for every service's clients
    let sdk = accessflow_testkit::data_stores::sdk_config_in_account(&account).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let kms = aws_sdk_kms::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let queue_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::999988887777:root"}},"Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:{account}:inbox"}}]}}"#
    );
    sqs.create_queue()
        .queue_name("inbox")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::Policy, queue_policy)
        .tags("confidentiality", "internal")
        .send()
        .await
        .expect("queue");
    sqs.create_queue()
        .queue_name("no-policy")
        .send()
        .await
        .expect("queue");
    let topic = sns
        .create_topic()
        .name("alerts")
        .tags(
            aws_sdk_sns::types::Tag::builder()
                .key("environment")
                .value("production")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("topic");
    let topic_arn = topic.topic_arn().expect("topic ARN").to_string();
    let public = format!("pub-{account}");
    let blocked = format!("bpa-{account}");
    let acl = format!("acl-{account}");
    let plain = format!("plain-{account}");
    for b in [&public, &blocked, &acl, &plain] {
        s3.create_bucket()
            .bucket(b.as_str())
            .send()
            .await
            .expect("bucket");
    }
    let policy = |b: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}}]}}"#
        )
    };
    for b in [&public, &blocked] {
        s3.put_bucket_policy()
            .bucket(b.as_str())
            .policy(policy(b))
            .send()
            .await
            .expect("bucket policy");
    }
    s3.put_public_access_block()
        .bucket(blocked.as_str())
        .public_access_block_configuration(
            aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .expect("public access block");
    s3.put_bucket_acl()
        .bucket(acl.as_str())
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .expect("acl");
    s3.put_bucket_ownership_controls()
        .bucket(plain.as_str())
        .ownership_controls(
            aws_sdk_s3::types::OwnershipControls::builder()
                .rules(
                    aws_sdk_s3::types::OwnershipControlsRule::builder()
                        .object_ownership(aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .expect("rule"),
                )
                .build()
                .expect("ownership controls"),
        )
        .send()
        .await
        .expect("object ownership");
    s3.put_bucket_tagging()
        .bucket(plain.as_str())
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("confidentiality")
                        .value("high")
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("tagging");
    let key_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}},{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::999988887777:root"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#
    );
    let key = kms
        .create_key()
        .policy(key_policy)
        .send()
        .await
        .expect("key");
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .expect("key id");
    kms.create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::444455556666:role/backup")
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .expect("grant");

    // Secrets Manager, Lambda, ECR and DynamoDB, each shared with the other account
    let shared_with = |action: &str, resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::999988887777:root"}},"Action":"{action}","Resource":"{resource}"}}]}}"#
        )
    };
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret = secrets
        .create_secret()
        .name("db-password")
        .secret_string("hunter2")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("confidentiality")
                .value("secret")
                .build(),
        )
        .send()
        .await
        .expect("secret");
    let secret_arn = secret.arn().expect("secret ARN").to_string();
    secrets
        .put_resource_policy()
        .secret_id(&secret_arn)
        .resource_policy(shared_with("secretsmanager:GetSecretValue", "*"))
        .send()
        .await
        .expect("secret policy");
    let function_arn = accessflow_testkit::data_stores::create_function(
        &sdk,
        &account,
        "thumbnailer",
        &[("environment", "production")],
    )
    .await
    .expect("function");
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    lambda
        .add_permission()
        .function_name("thumbnailer")
        .statement_id("partner-invoke")
        .action("lambda:InvokeFunction")
        .principal("999988887777")
        .send()
        .await
        .expect("function permission");
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let repository = ecr
        .create_repository()
        .repository_name("images")
        .send()
        .await
        .expect("repository");
    let repository_arn = repository
        .repository()
        .and_then(|r| r.repository_arn())
        .expect("repository ARN")
        .to_string();
    ecr.set_repository_policy()
        .repository_name("images")
        .policy_text(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#,
        )
        .send()
        .await
        .expect("repository policy");
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    accessflow_testkit::data_stores::create_table(&dynamodb, "orders")
        .await
        .expect("table");
    let table_arn = format!("arn:aws:dynamodb:us-east-1:{account}:table/orders");
    dynamodb
        .put_resource_policy()
        .resource_arn(&table_arn)
        .policy(shared_with("dynamodb:GetItem", &table_arn))
        .send()
        .await
        .expect("table policy");
    // The account's Block Public Access (S3 Control)
    aws_sdk_s3control::Client::from_conf(
        aws_sdk_s3control::config::Builder::from(&sdk)
            .endpoint_resolver(accessflow_shared::aws::EmulatorS3ControlEndpoint(
                endpoint.clone(),
            ))
            .build(),
    )
    .put_public_access_block()
    .account_id(&account)
    .public_access_block_configuration(
        aws_sdk_s3control::types::PublicAccessBlockConfiguration::builder()
            .ignore_public_acls(true)
            .build(),
    )
    .send()
    .await
    .expect("account public access block");
    // A queue in a second region the customer lists
    let sqs_eu = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .region(Region::new("eu-west-1"))
            .build(),
    );
    sqs_eu
        .create_queue()
        .queue_name("eu-inbox")
        .send()
        .await
        .expect("queue in eu-west-1");

    // Turned off (ACCESSFLOW_COLLECT_RESOURCES=off): no inventory.
    let mut off_settings = moto::settings(&moto::unique_prefix("resoff"));
    off_settings.collect_resources = false;
    let off = accessflow_shared::aws::AwsBackend::connect(&off_settings)
        .await
        .expect("connect");
    let raw = off
        .ports()
        .iam
        .fetch_account(&locator(&account))
        .await
        .unwrap();
    assert!(raw.resources.is_none());

    let backend = accessflow_shared::aws::AwsBackend::connect(&base)
        .await
        .expect("connect");
    let mut in_two_regions = locator(&account);
    in_two_regions.regions = vec!["us-east-1".into(), "eu-west-1".into()];
    let raw = backend
        .ports()
        .iam
        .fetch_account(&in_two_regions)
        .await
        .unwrap();
    let inventory: Value =
        serde_json::from_slice(&raw.resources.expect("an inventory")).expect("JSON");
    let resources = &inventory["Resources"];
    let arn = |b: &str| format!("arn:aws:s3:::{b}");
    let bucket = |b: &str| find(resources, "Arn", &arn(b)).clone();
    assert!(bucket(&public)["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("s3:GetObject")));
    assert_eq!(
        bucket(&blocked)["BlockPublicAccess"]["RestrictPublicBuckets"],
        true
    );
    assert!(
        bucket(&acl)["AclGrants"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["Grantee"]
                .as_str()
                .is_some_and(|u| u.ends_with("/AllUsers"))
                && g["Permission"] == "READ")),
        "{inventory:#}"
    );
    assert_eq!(bucket(&plain)["Tags"]["confidentiality"], "high");
    assert_eq!(bucket(&plain)["ObjectOwnership"], "BucketOwnerEnforced");
    assert!(bucket(&plain).get("Policy").is_none(), "no policy: none");
    let key = resources
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["Type"] == "AWS::KMS::Key")
        .expect("the key");
    assert!(key["Arn"].as_str().is_some_and(|a| a.ends_with(&key_id)));
    assert!(key["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("999988887777")));
    assert_eq!(
        key["Grants"][0]["GranteePrincipal"],
        "arn:aws:iam::444455556666:role/backup"
    );
    // SQS: the policy and the tags; a queue without a policy has none
    let inbox = find(
        resources,
        "Arn",
        &format!("arn:aws:sqs:us-east-1:{account}:inbox"),
    );
    assert_eq!(inbox["Type"], "AWS::SQS::Queue");
    assert!(inbox["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("999988887777")));
    assert_eq!(inbox["Tags"]["confidentiality"], "internal");
    let no_policy = find(
        resources,
        "Arn",
        &format!("arn:aws:sqs:us-east-1:{account}:no-policy"),
    );
    assert!(no_policy.get("Policy").is_none(), "{no_policy:#}");
    // SNS: the topic's (default) policy and its tags
    let alerts = find(resources, "Arn", &topic_arn);
    assert_eq!(alerts["Type"], "AWS::SNS::Topic");
    assert!(alerts["Policy"].as_str().is_some(), "{alerts:#}");
    assert_eq!(alerts["Tags"]["environment"], "production");
    // the analysis reads the collected inventory: the queue is open to the other account,
    // the default topic policy (the account's own sources) to nobody outside
    let parsed = accessflow_analysis::resources::ResourceInventory::parse(
        &serde_json::to_vec(&inventory).expect("json"),
    )
    .expect("the collected inventory parses");
    let engine = accessflow_analysis::Engine::new().expect("catalog");
    let exposure = accessflow_analysis::resources::external_access(&engine, &parsed, &account, &[]);
    assert!(
        exposure
            .iter()
            .any(|r| r.resource_arn.ends_with(":inbox") && r.external_account == "999988887777"),
        "{exposure:#?}"
    );
    assert!(
        !exposure.iter().any(|r| r.resource_arn == topic_arn),
        "{exposure:#?}"
    );
    // Secrets Manager, Lambda, ECR, DynamoDB: policies and tags
    let secret = find(resources, "Arn", &secret_arn);
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert!(secret["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("GetSecretValue")));
    assert_eq!(secret["Tags"]["confidentiality"], "secret");
    let function = find(resources, "Arn", &function_arn);
    assert_eq!(function["Type"], "AWS::Lambda::Function");
    assert!(function["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("999988887777")));
    assert_eq!(function["Tags"]["environment"], "production");
    let repository = find(resources, "Arn", &repository_arn);
    assert_eq!(repository["Type"], "AWS::ECR::Repository");
    assert!(repository["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("BatchGetImage")));
    let table = find(resources, "Arn", &table_arn);
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    assert!(table["Policy"]
        .as_str()
        .is_some_and(|p| p.contains("dynamodb:GetItem")));
    // the account's Block Public Access, and the second region's queue
    assert_eq!(
        inventory["AccountBlockPublicAccess"]["IgnorePublicAcls"], true,
        "{inventory:#}"
    );
    let eu = find(
        resources,
        "Arn",
        &format!("arn:aws:sqs:eu-west-1:{account}:eu-inbox"),
    );
    assert_eq!(eu["Region"], "eu-west-1");
    for arn in [&secret_arn, &function_arn, &repository_arn, &table_arn] {
        assert!(
            exposure
                .iter()
                .any(|r| &r.resource_arn == arn && r.external_account == "999988887777"),
            "{arn} is shared with 999988887777: {exposure:#?}"
        );
    }
    // the account's IgnorePublicAcls blocks the public-read ACL
    let acl_rows: Vec<_> = exposure
        .iter()
        .filter(|r| r.resource_arn == arn(&acl) && r.via == "bucket ACL")
        .collect();
    assert!(
        !acl_rows.is_empty()
            && acl_rows
                .iter()
                .all(|r| r.status == accessflow_analysis::resources::ExposureStatus::Blocked),
        "{acl_rows:#?}"
    );
    let customer_role = backend.customer_role_operation_counts();
    for op in [
        "s3control:GetPublicAccessBlock",
        "secretsmanager:GetResourcePolicy",
        "lambda:GetPolicy",
        "ecr:GetRepositoryPolicy",
        "dynamodb:GetResourcePolicy",
        "iam:GetAccountAuthorizationDetails",
    ] {
        assert!(customer_role.contains_key(op), "{op}: {customer_role:?}");
    }
    assert!(
        !customer_role.keys().any(|op| op.starts_with("sts:")),
        "AssumeRole is the worker's own request: {customer_role:?}"
    );
    let counts = backend.request_counts();
    assert!(counts["s3"] >= 17, "ListBuckets + 4 per bucket: {counts:?}");
    assert!(counts["kms"] >= 5, "{counts:?}");
    assert!(
        counts["sqs"] >= 8,
        "ListQueues per region + 2 per queue: {counts:?}"
    );
    assert!(counts["sns"] >= 3, "ListTopics + 2 per topic: {counts:?}");
}

/// Access denied is a warning in the account's inventory, never a failed account: with a
/// proxy in front of moto answering AccessDenied as AWS does to a role its policies do not
/// allow (moto enforces no IAM), one bucket's policy, the whole Secrets Manager listing and
/// one topic's attributes cannot be read; each is named in a warning and everything else is
/// collected.
#[tokio::test]
async fn access_denied_on_one_resource_is_a_warning_and_the_rest_is_collected() {
    let account = moto::unique_account();
    seed(&account).await;
    accessflow_testkit::data_stores::seed_data_stores(&account, "den")
        .await
        .expect("data stores");
    let denied_bucket = format!("den-{account}-data");
    let proxy = moto::FaultProxy::start_denying(
        0.0,
        1,
        &format!(
            r"^GET /{denied_bucket}[/?]\S*policy|secretsmanager\.ListSecrets|Action=GetTopicAttributes"
        ),
    );
    let mut settings = moto::settings(&moto::unique_prefix("den"));
    settings.endpoint_url = Some(proxy.url.clone());
    let backend = accessflow_shared::aws::AwsBackend::connect(&settings)
        .await
        .expect("connect");
    let raw = backend
        .ports()
        .iam
        .fetch_account(&locator(&account))
        .await
        .expect("access denied does not fail the account");
    let inventory: Value =
        serde_json::from_slice(&raw.resources.expect("an inventory")).expect("JSON");
    let warnings: Vec<&str> = inventory["Warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let warned = |needle: &str| warnings.iter().any(|w| w.contains(needle));
    assert!(
        warned(&format!(
            "S3 bucket {denied_bucket}: access denied reading its policy"
        )),
        "{warnings:#?}"
    );
    assert!(
        warned("Secrets Manager in us-east-1: access denied listing the secrets"),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("SNS topic ")
            && w.contains(":den-alerts: access denied reading its attributes")),
        "{warnings:#?}"
    );
    assert_eq!(warnings.len(), 3, "nothing else was denied: {warnings:#?}");
    let kinds: std::collections::BTreeSet<&str> = inventory["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["Type"].as_str())
        .collect();
    // the denied bucket is still listed (without its policy); no secret, no topic
    assert_eq!(
        kinds,
        [
            "AWS::DynamoDB::Table",
            "AWS::ECR::Repository",
            "AWS::KMS::Key",
            "AWS::Lambda::Function",
            "AWS::S3::Bucket",
            "AWS::SQS::Queue",
        ]
        .into_iter()
        .collect(),
        "{inventory:#}"
    );
    // the analysis carries the warnings into the account's report
    let parsed = accessflow_analysis::resources::ResourceInventory::parse(
        &serde_json::to_vec(&inventory).expect("json"),
    )
    .expect("parses");
    assert_eq!(parsed.warnings.len(), 3);
    let faults = proxy.faults();
    assert!(
        faults.get("s3:denied").copied().unwrap_or(0) >= 1
            && faults.get("secretsmanager:denied").copied().unwrap_or(0) >= 1
            && faults.get("sns:denied").copied().unwrap_or(0) >= 1,
        "{faults:?}"
    );
}

/// Paging: more than one page of topics, tables and secrets (moto pages them at 100, as
/// AWS does) are all collected, each listing read page after page.
#[tokio::test]
async fn every_page_of_a_listing_is_collected() {
    const N: usize = 101;
    let account = moto::unique_account();
    seed(&account).await;
    let sdk = accessflow_testkit::data_stores::sdk_config_in_account(&account).await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    for i in 0..N {
        sns.create_topic()
            .name(format!("topic-{i:03}"))
            .send()
            .await
            .expect("topic");
        accessflow_testkit::data_stores::create_table(&dynamodb, &format!("table-{i:03}"))
            .await
            .expect("table");
        secrets
            .create_secret()
            .name(format!("secret-{i:03}"))
            .secret_string("x")
            .send()
            .await
            .expect("secret");
    }
    let backend =
        accessflow_shared::aws::AwsBackend::connect(&moto::settings(&moto::unique_prefix("page")))
            .await
            .expect("connect");
    let raw = backend
        .ports()
        .iam
        .fetch_account(&locator(&account))
        .await
        .expect("fetch");
    let inventory: Value =
        serde_json::from_slice(&raw.resources.expect("an inventory")).expect("JSON");
    let count = |kind: &str| {
        inventory["Resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter(|r| r["Type"] == kind)
            .count()
    };
    assert_eq!(count("AWS::SNS::Topic"), N);
    assert_eq!(count("AWS::DynamoDB::Table"), N);
    assert_eq!(count("AWS::SecretsManager::Secret"), N);
    let ops = backend.customer_role_operation_counts();
    for op in [
        "sns:ListTopics",
        "dynamodb:ListTables",
        "secretsmanager:ListSecrets",
    ] {
        assert!(
            ops.get(op).copied().unwrap_or(0) >= 2,
            "{op} read more than one page: {ops:?}"
        );
    }
}
