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
