//! Estimated AWS cost of requests, from the program's own request counts
//! ([`super::RequestCounter`]) and a table of public list prices: the workers' cost metric
//! (`accessflow_aws_estimated_cost_dollars_total`) and the tests' cost figures.
//!
//! The default prices are AWS's public on-demand list prices in us-east-1 as known when
//! this was written; they are plain data ([`Prices`]) so they can be updated or replaced
//! for another region. DynamoDB is billed in request units, which depend on item sizes and
//! on how many items a batch or transaction holds: [`billed_units`] estimates them from
//! each request's body (every KB written is a write unit, a transaction's items count
//! twice; each key read is a read unit, half one when eventually consistent), so large inline
//! items cost what they weigh. What
//! the estimate leaves out: free tiers, payload-size surcharges (SQS/SNS bill every 64 KB
//! chunk as a request; SNS FIFO also bills payload GBs), reads over 4 KB, storage (S3,
//! DynamoDB), KMS's $1 per key per month, and data transfer. STS and IAM requests are free,
//! and so are the control-plane reads of the resource inventory (Lambda, ECR, S3 Control,
//! DynamoDB's ListTables and GetResourcePolicy); those made with a customer role's
//! credentials are billed to the customer's account.

use std::collections::BTreeMap;

/// US dollars per single request (or request unit), by request class.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    /// SQS FIFO: $0.50 per million requests.
    pub sqs_fifo_request: f64,
    /// SNS FIFO publish: $0.30 per million publish requests (a batch of 10 counts 10).
    pub sns_fifo_publish: f64,
    /// Other SNS API requests: $0.50 per million.
    pub sns_other_request: f64,
    /// DynamoDB on-demand: $0.625 per million write request units.
    pub dynamodb_write_unit: f64,
    /// DynamoDB on-demand: $0.125 per million read request units.
    pub dynamodb_read_unit: f64,
    /// S3 PUT, COPY, POST, LIST: $0.005 per 1,000.
    pub s3_put_list: f64,
    /// S3 GET, HEAD and others: $0.0004 per 1,000.
    pub s3_get: f64,
    /// KMS: $0.03 per 10,000 requests.
    pub kms_request: f64,
    /// Secrets Manager: $0.05 per 10,000 API calls (the resource inventory's reads).
    pub secrets_manager_request: f64,
    /// AWS Step Functions Standard: $0.025 per 1,000 state transitions (for comparison).
    pub step_functions_transition: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            sqs_fifo_request: 0.50 / 1e6,
            sns_fifo_publish: 0.30 / 1e6,
            sns_other_request: 0.50 / 1e6,
            dynamodb_write_unit: 0.625 / 1e6,
            dynamodb_read_unit: 0.125 / 1e6,
            s3_put_list: 0.005 / 1e3,
            s3_get: 0.0004 / 1e3,
            kms_request: 0.03 / 1e4,
            secrets_manager_request: 0.05 / 1e4,
            step_functions_transition: 0.025 / 1e3,
        }
    }
}

/// The price of one billed unit of `service:Operation`: a request, or for DynamoDB a
/// request unit ([`billed_units`] says how many a request is).
pub fn price_of(operation: &str, prices: &Prices) -> f64 {
    let (service, op) = operation.split_once(':').unwrap_or((operation, ""));
    match service {
        "sqs" => prices.sqs_fifo_request,
        "sns" => match op {
            "Publish" => prices.sns_fifo_publish,
            // Billed per message in the batch; the batch size is not on the counter, so
            // count the batch as its maximum of 10 (an upper bound).
            "PublishBatch" => 10.0 * prices.sns_fifo_publish,
            _ => prices.sns_other_request,
        },
        "dynamodb" => match op {
            "GetItem" | "Query" | "Scan" | "BatchGetItem" => prices.dynamodb_read_unit,
            "TransactWriteItems" | "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" => {
                prices.dynamodb_write_unit
            }
            _ => 0.0,
        },
        "s3" => match op {
            // S3 bills deletes nothing, writes and listings as PUT, reads as GET.
            "DeleteObject" | "DeleteObjects" => 0.0,
            op if op.starts_with("Put")
                || op.starts_with("List")
                || op.starts_with("Copy")
                || op.starts_with("Create")
                || op.starts_with("Post") =>
            {
                prices.s3_put_list
            }
            _ => prices.s3_get,
        },
        "kms" => prices.kms_request,
        "secretsmanager" => prices.secrets_manager_request,
        // sts, iam, and the control-plane reads of the resource inventory (Lambda, ECR,
        // S3 Control): free
        _ => 0.0,
    }
}

/// How many billed units one request of `service:Operation` with this body is: 1 for
/// everything but DynamoDB; for DynamoDB an estimate from the request's JSON body: a write
/// is a unit per KB (at least one per item written), a transaction's items count twice,
/// and a read is a unit per key (items up to 4 KB), half a unit eventually consistent. Expression text in the body makes it
/// slightly high for single writes.
pub fn billed_units(operation: &str, body: Option<&[u8]>) -> u64 {
    let Some(op) = operation.strip_prefix("dynamodb:") else {
        return 1;
    };
    let body = body.unwrap_or_default();
    let kb = (body.len() as u64).div_ceil(1024).max(1);
    let count = |needle: &[u8]| -> u64 {
        if needle.is_empty() || body.len() < needle.len() {
            return 0;
        }
        body.windows(needle.len()).filter(|w| *w == needle).count() as u64
    };
    match op {
        "PutItem" | "UpdateItem" | "DeleteItem" => kb,
        "BatchWriteItem" => kb.max(count(b"\"PutRequest\"") + count(b"\"DeleteRequest\"")),
        // Every transaction item names its table.
        "TransactWriteItems" => 2 * kb.max(count(b"\"TableName\"")),
        // Every key names its partition key attribute; an eventually consistent read
        // costs half a unit (rounded up over the request).
        "BatchGetItem" => {
            let keys = count(b"\"pk\"").max(1);
            if count(b"\"ConsistentRead\":true") > 0 {
                keys
            } else {
                keys.div_ceil(2)
            }
        }
        _ => 1,
    }
}

/// Estimated cost in US dollars per service, from billed units per operation
/// ([`billed_units`]; for anything but DynamoDB these are the request counts).
pub fn estimate(operations: &BTreeMap<String, u64>, prices: &Prices) -> BTreeMap<String, f64> {
    let mut per_service = BTreeMap::new();
    for (operation, n) in operations {
        let service = operation.split(':').next().unwrap_or_default().to_string();
        *per_service.entry(service).or_insert(0.0) += *n as f64 * price_of(operation, prices);
    }
    per_service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamodb_bills_by_size_and_by_item() {
        let small = br#"{"TableName":"t","Key":{"pk":{"S":"a"},"sk":{"S":"b"}}}"#;
        assert_eq!(billed_units("dynamodb:UpdateItem", Some(small)), 1);
        let big = vec![b'x'; 5 * 1024 + 1];
        assert_eq!(billed_units("dynamodb:UpdateItem", Some(&big)), 6);
        let batch =
            br#"{"RequestItems":{"t":[{"PutRequest":{}},{"PutRequest":{}},{"PutRequest":{}}]}}"#;
        assert_eq!(billed_units("dynamodb:BatchWriteItem", Some(batch)), 3);
        let transaction =
            br#"{"TransactItems":[{"Put":{"TableName":"t"}},{"Update":{"TableName":"t"}}]}"#;
        assert_eq!(
            billed_units("dynamodb:TransactWriteItems", Some(transaction)),
            4
        );
        let get = br#"{"RequestItems":{"t":{"Keys":[{"pk":{"S":"a"}},{"pk":{"S":"b"}},{"pk":{"S":"c"}}],"ConsistentRead":true}}}"#;
        assert_eq!(billed_units("dynamodb:BatchGetItem", Some(get)), 3);
        let eventual = br#"{"RequestItems":{"t":{"Keys":[{"pk":{"S":"a"}},{"pk":{"S":"b"}},{"pk":{"S":"c"}}],"ConsistentRead":false}}}"#;
        assert_eq!(billed_units("dynamodb:BatchGetItem", Some(eventual)), 2);
        assert_eq!(billed_units("sqs:ReceiveMessage", Some(&big)), 1);
    }

    #[test]
    fn a_million_of_each() {
        let p = Prices::default();
        let ops = BTreeMap::from([
            ("sqs:SendMessageBatch".to_string(), 1_000_000),
            ("s3:PutObject".to_string(), 1_000_000),
            ("s3:DeleteObject".to_string(), 1_000_000),
            ("kms:GenerateDataKey".to_string(), 1_000_000),
            ("sts:AssumeRole".to_string(), 1_000_000),
        ]);
        let cost = estimate(&ops, &p);
        assert!((cost["sqs"] - 0.50).abs() < 1e-9);
        assert!((cost["s3"] - 5.0).abs() < 1e-9);
        assert!((cost["kms"] - 3.0).abs() < 1e-9);
        assert_eq!(cost["sts"], 0.0);
    }
}
