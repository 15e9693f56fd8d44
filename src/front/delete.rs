//! DeleteObject and DeleteObjects: forwarded (deleting reveals nothing).

use super::Gateway;
use super::error::upstream_object;
use crate::upstream::UpstreamError;
use aws_sdk_s3::types as up;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

pub async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    gw.upstream
        .client
        .delete_object()
        .bucket(&i.bucket)
        .key(crate::upstream::key(&i.key))
        .send()
        .await
        .map_err(|e| upstream_object(UpstreamError::from_sdk(e)))?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// The most keys S3 takes in one DeleteObjects request.
pub const MAX_DELETE_KEYS: usize = 1000;

pub async fn delete_objects(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let i = req.input;
    if i.delete.objects.len() > MAX_DELETE_KEYS {
        // S3's answer; nothing is deleted.
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema: at most {MAX_DELETE_KEYS} keys per DeleteObjects request"
        ));
    }
    let objects = i
        .delete
        .objects
        .iter()
        .map(|o| up::ObjectIdentifier::builder().key(&o.key).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| s3_error!(MalformedXML))?;
    let delete = up::Delete::builder()
        .set_objects(Some(objects))
        .quiet(i.delete.quiet.unwrap_or(false))
        .build()
        .map_err(|_| s3_error!(MalformedXML))?;
    let out = gw
        .upstream
        .client
        .delete_objects()
        .bucket(&i.bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| upstream_object(UpstreamError::from_sdk(e)))?;
    let deleted = out
        .deleted()
        .iter()
        .map(|d| DeletedObject {
            key: d.key().map(str::to_owned),
            ..Default::default()
        })
        .collect();
    let errors = out
        .errors()
        .iter()
        .map(|e| Error {
            key: e.key().map(str::to_owned),
            code: e.code().map(str::to_owned),
            message: e.message().map(str::to_owned),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}
