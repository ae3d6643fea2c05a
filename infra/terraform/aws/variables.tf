# branchenv passes each of these because the module declares it (see docs/terraform.md).

variable "prefix" {
  description = "Starts every physical name (<prefix>-orders, ...); branchenv derives it from the branch."
  type        = string
  validation {
    # orders_stack_spec.physical_names: 3-39 of lowercase letters, digits and single hyphens.
    condition     = length(var.prefix) >= 3 && length(var.prefix) <= 39 && can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", var.prefix))
    error_message = "The prefix must be 3-39 lowercase letters, digits and single hyphens, starting with a letter; let branchenv set it (`branchenv up`)."
  }
}

variable "profile" {
  description = "ephemeral (smallest sizes) or prodlike (production sizes); the same resources either way."
  type        = string
  default     = "ephemeral"
  validation {
    condition     = contains(["ephemeral", "prodlike"], var.profile)
    error_message = "Unknown profile. Valid profiles: ephemeral, prodlike."
  }
}

variable "local_functions_url" {
  description = "The local function runner's URL (local cloud only): the endpoint output then points at it instead of API Gateway."
  type        = string
  default     = null
}

variable "python" {
  description = "The Python interpreter that builds the function's deployment package."
  type        = string
  default     = "python3"
}
