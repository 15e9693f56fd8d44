//! Bucket calls and listings.

use super::{Upstream, UpstreamError, time};
use time::OffsetDateTime;

/// A bucket as the provider lists it.
#[derive(Debug, Clone, Default)]
pub struct ProviderBucket {
    /// Bucket name.
    pub name: Option<String>,
    /// When the bucket was created.
    pub creation_date: Option<OffsetDateTime>,
}

/// A ListObjects (v1 or v2) request.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Bucket name.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Groups keys up to this into common prefixes.
    pub delimiter: Option<String>,
    /// At most this many entries.
    pub max_keys: Option<i32>,
    /// v2 only.
    pub continuation_token: Option<String>,
    /// v2 only.
    pub start_after: Option<String>,
    /// v1 only.
    pub marker: Option<String>,
}

/// An object as the provider lists it.
#[derive(Debug, Clone, Default)]
pub struct ListedObject {
    /// Object key, as the client named it.
    pub key: Option<String>,
    /// Stored size.
    pub size: Option<i64>,
    /// The provider's ETag.
    pub e_tag: Option<String>,
    /// When the object was last written.
    pub last_modified: Option<OffsetDateTime>,
    /// The provider's storage class.
    pub storage_class: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// The objects listed.
    pub contents: Vec<ListedObject>,
    /// The common prefixes listed.
    pub common_prefixes: Vec<Option<String>>,
    /// More follow.
    pub is_truncated: Option<bool>,
    /// v2 only.
    pub next_continuation_token: Option<String>,
    /// v1 only.
    pub next_marker: Option<String>,
}

macro_rules! listed {
    ($out:expr) => {
        $out.contents()
            .iter()
            .map(|o| ListedObject {
                key: o.key().map(str::to_owned),
                size: o.size(),
                e_tag: o.e_tag().map(str::to_owned),
                last_modified: o.last_modified().and_then(time),
                storage_class: o.storage_class().map(|s| s.as_str().to_owned()),
            })
            .collect()
    };
}

macro_rules! prefixes {
    ($out:expr) => {
        $out.common_prefixes()
            .iter()
            .map(|p| p.prefix().map(str::to_owned))
            .collect()
    };
}

impl Upstream {
    /// ListBuckets.
    pub async fn list_buckets(&self) -> Result<Vec<ProviderBucket>, UpstreamError> {
        let out = self
            .client
            .list_buckets()
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out
            .buckets()
            .iter()
            .map(|b| ProviderBucket {
                name: b.name().map(str::to_owned),
                creation_date: b.creation_date().and_then(time),
            })
            .collect())
    }

    /// CreateBucket.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        self.client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// HeadBucket.
    pub async fn head_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        self.client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<(), UpstreamError> {
        self.client
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(())
    }

    /// GetBucketLocation: the location constraint as the provider names it
    /// (possibly empty).
    pub async fn bucket_location(&self, bucket: &str) -> Result<Option<String>, UpstreamError> {
        let out = self
            .client
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(out.location_constraint().map(|l| l.as_str().to_owned()))
    }

    /// ListObjectsV2.
    pub async fn list_objects_v2(&self, r: ListRequest) -> Result<ListPage, UpstreamError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(r.bucket)
            .set_prefix(r.prefix)
            .set_delimiter(r.delimiter)
            .set_max_keys(r.max_keys)
            .set_continuation_token(r.continuation_token)
            .set_start_after(r.start_after)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(ListPage {
            contents: listed!(out),
            common_prefixes: prefixes!(out),
            is_truncated: out.is_truncated(),
            next_continuation_token: out.next_continuation_token().map(str::to_owned),
            next_marker: None,
        })
    }

    /// ListObjects (v1).
    pub async fn list_objects(&self, r: ListRequest) -> Result<ListPage, UpstreamError> {
        let out = self
            .client
            .list_objects()
            .bucket(r.bucket)
            .set_prefix(r.prefix)
            .set_delimiter(r.delimiter)
            .set_max_keys(r.max_keys)
            .set_marker(r.marker)
            .send()
            .await
            .map_err(UpstreamError::from_sdk)?;
        Ok(ListPage {
            contents: listed!(out),
            common_prefixes: prefixes!(out),
            is_truncated: out.is_truncated(),
            next_continuation_token: None,
            next_marker: out.next_marker().map(str::to_owned),
        })
    }
}
