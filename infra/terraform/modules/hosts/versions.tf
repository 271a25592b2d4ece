# Only what ships inside Terraform: terraform_data, provisioners, templatefile. No provider to download.
terraform {
  required_version = ">= 1.4"
}
