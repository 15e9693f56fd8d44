//! DeleteObject and DeleteObjects: forwarded (deleting reveals nothing).

use super::Gateway;
use super::error::{FrontError, FrontResult, upstream_object};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

pub async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> FrontResult<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    gw.upstream
        .delete_object(&i.bucket, &i.key)
        .await
        .map_err(upstream_object)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// The most keys S3 takes in one DeleteObjects request.
pub const MAX_DELETE_KEYS: usize = 1000;

pub async fn delete_objects(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> FrontResult<S3Response<DeleteObjectsOutput>> {
    let i = req.input;
    if i.delete.objects.len() > MAX_DELETE_KEYS {
        // S3's answer; nothing is deleted.
        return Err(FrontError::MalformedXml(format!(
            "The XML you provided was not well-formed or did not validate against our published schema: at most {MAX_DELETE_KEYS} keys per DeleteObjects request"
        )));
    }
    let keys: Vec<String> = i.delete.objects.iter().map(|o| o.key.clone()).collect();
    let out = gw
        .upstream
        .delete_objects(&i.bucket, &keys, i.delete.quiet.unwrap_or(false))
        .await
        .map_err(upstream_object)?;
    let deleted = out
        .deleted
        .into_iter()
        .map(|key| DeletedObject {
            key,
            ..Default::default()
        })
        .collect();
    let errors = out
        .errors
        .into_iter()
        .map(|e| Error {
            key: e.key,
            code: e.code,
            message: e.message,
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}
