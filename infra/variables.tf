variable "project_id" {
  description = "The GCP project that hosts the warehouse, the job and its schedule."
  type        = string
}

variable "region" {
  description = "Region of the Dataflow job, the buckets, Artifact Registry and Cloud Scheduler."
  type        = string
  default     = "us-central1"
}

variable "dataset_id" {
  description = "BigQuery dataset of the warehouse tables and views."
  type        = string
  default     = "dicomwarehouse"
}

variable "dataset_location" {
  description = "BigQuery dataset location (IDC's public data is in US)."
  type        = string
  default     = "US"
}

variable "source_buckets" {
  description = "Buckets the job reads DICOM objects from (read access only)."
  type        = list(string)
  default     = []
}

variable "job_sources" {
  description = "Sources handed to the job: gs:// prefixes or globs (its 'sources' parameter)."
  type        = list(string)
}

variable "warehouse_bucket_name" {
  description = "Bucket that holds the warehouse (Parquet tables, ledger, run records)."
  type        = string
}

variable "staging_bucket_name" {
  description = "Bucket for Dataflow staging and temp files and the Flex Template spec."
  type        = string
}

variable "template_image_tag" {
  description = "Tag of the ingest image pushed to the Artifact Registry repository."
  type        = string
  default     = "latest"
}

variable "schedule" {
  description = "Cron schedule of the incremental ingest (Cloud Scheduler syntax)."
  type        = string
  default     = "0 3 * * *"
}

variable "time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "max_workers" {
  description = "Upper bound of Dataflow workers for one run."
  type        = number
  default     = 10
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the buckets, the Artifact Registry repository, the Dataflow job's state and, unless dataset_kms_key_name is set, the dataset and its tables. It must be in var.region. Null: Google-managed keys."
  type        = string
  default     = null
  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name is a key's full name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "dataset_kms_key_name" {
  description = "Cloud KMS key for the dataset and its tables when they need their own: a key must be in the dataset's location (us for the US multi-region). Null: kms_key_name."
  type        = string
  default     = null
  validation {
    condition     = var.dataset_kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.dataset_kms_key_name))
    error_message = "dataset_kms_key_name is a key's full name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "access_log_bucket_name" {
  description = "Bucket of the buckets' usage logs and the exported audit logs. Null: the warehouse bucket's name plus -logs."
  type        = string
  default     = null
}

variable "access_log_retention_days" {
  description = "Days the usage and audit logs are kept: none can be deleted sooner, all are deleted then."
  type        = number
  default     = 365
}

variable "lock_access_log_retention" {
  description = "Lock the log bucket's retention policy (Bucket Lock): nobody, owners included, can then shorten it or delete logs early. Irreversible."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object of the warehouse bucket stays restorable before its old version is deleted."
  type        = number
  default     = 30
}

variable "data_access_audit_logs" {
  description = "Turn on Cloud Audit Logs data access logging (reads and writes) for Cloud Storage and BigQuery in the project."
  type        = bool
  default     = true
}
