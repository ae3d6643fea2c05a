# The function's deployment package, built without the archive provider: a zip of the service's
# *.py files with fixed timestamps and modes, so the same source always gives the same bytes.
# It is rebuilt (and the function's code updated) exactly when the source hash changes.

locals {
  service_dir   = "${path.module}/service"
  service_files = sort(fileset(local.service_dir, "*.py"))
  service_hash = sha256(join("\n", [
    for f in local.service_files : "${f} ${filesha256("${local.service_dir}/${f}")}"
  ]))
  zip_path = "${path.module}/.build/orders-${substr(local.service_hash, 0, 16)}.zip"
}

resource "terraform_data" "service_zip" {
  triggers_replace = local.service_hash
  input            = local.zip_path

  provisioner "local-exec" {
    command = "${var.python} ${path.module}/build_zip.py ${local.service_dir} ${local.zip_path}"
  }
}
