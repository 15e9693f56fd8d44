//! Bucket operations: forwarded as they are (buckets hold no plaintext).

use super::Gateway;
use super::error::{FrontError, FrontResult, upstream_bucket};
use crate::upstream::ListRequest;
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// Lists the provider's buckets that the caller's grant names (set by the
/// access check, `auth::VisibleBuckets`; without it, none).
pub async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> FrontResult<S3Response<ListBucketsOutput>> {
    let visible = req
        .extensions
        .get::<crate::auth::VisibleBuckets>()
        .cloned()
        .unwrap_or(crate::auth::VisibleBuckets::Only(Vec::new()));
    let listed = gw.upstream.list_buckets().await.map_err(upstream_bucket)?;
    let buckets = listed
        .into_iter()
        .filter(|b| b.name.as_deref().is_some_and(|n| visible.shows(n)))
        .map(|b| Bucket {
            name: b.name,
            creation_date: b.creation_date.map(Timestamp::from),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some("sealgate".into()),
            id: Some("sealgate".into()),
        }),
        ..Default::default()
    }))
}

pub async fn create_bucket(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> FrontResult<S3Response<CreateBucketOutput>> {
    let bucket = req.input.bucket;
    gw.upstream
        .create_bucket(&bucket)
        .await
        .map_err(upstream_bucket)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

/// Asks the provider whether the bucket exists and is reachable.
async fn bucket_exists(gw: &Gateway, bucket: &str) -> FrontResult<()> {
    gw.upstream
        .head_bucket(bucket)
        .await
        .map_err(upstream_bucket)
}

pub async fn head_bucket(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> FrontResult<S3Response<HeadBucketOutput>> {
    bucket_exists(gw, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> FrontResult<S3Response<DeleteBucketOutput>> {
    // S3 deletes only an empty bucket; s3s-fs (the embedded default)
    // would remove a bucket and every object in it. One listed key is
    // enough to refuse, as S3 does.
    let listed = gw
        .upstream
        .list_objects_v2(ListRequest {
            bucket: req.input.bucket.clone(),
            max_keys: Some(1),
            ..Default::default()
        })
        .await
        .map_err(upstream_bucket)?;
    if !listed.contents.is_empty() || !listed.common_prefixes.is_empty() {
        return Err(FrontError::BucketNotEmpty);
    }
    gw.upstream
        .delete_bucket(&req.input.bucket)
        .await
        .map_err(upstream_bucket)?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}

pub async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> FrontResult<S3Response<GetBucketLocationOutput>> {
    // The provider's location where it has one (clients pick the signing
    // region from it); an empty answer means us-east-1, as on S3.
    let location = match gw.upstream.bucket_location(&req.input.bucket).await {
        Ok(l) => l.filter(|l| !l.is_empty()),
        // A provider without the call still answers HEAD for the bucket.
        Err(e) => {
            if e.status() == Some(404) {
                return Err(upstream_bucket(e));
            }
            bucket_exists(gw, &req.input.bucket).await?;
            None
        }
    };
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: location.map(BucketLocationConstraint::from),
    }))
}
