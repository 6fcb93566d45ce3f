# The nodeboot node image as an AMI: Debian 13's official AMI, provisioned on a build instance by the same
# image/provision.sh the local build (image/build.py) runs in its chroot, so both hold the same files. It cannot run
# on the project's machines (no AWS); `packer validate` does (scripts/image-test.py, Debian's packer 1.6.6).
#
#   make release
#   packer build -var region=us-west-2 image/packer/nodeboot.pkr.hcl
#
# What differs from the local build: the packages come from apt-get on the instance (provision.sh
# --install-packages), the pause image is built there from its catatonit, the AMI keeps its own kernel, boot loader
# and fstab, and image/validate.py is not run (it checks a tree from outside).

variable "region" {
  type    = string
  default = "us-west-2"
}

variable "instance_type" {
  type    = string
  default = "m5.large"
}

# The release nodeboot and nodeboot-cni (make release: static Swift runtime); default: the repository's .build/release.
variable "bin_dir" {
  type    = string
  default = ""
}

variable "ami_name_prefix" {
  type    = string
  default = "nodeboot-debian-13"
}

variable "volume_size_gib" {
  type    = number
  default = 8
}

locals {
  repo    = "${path.root}/../.."
  bin_dir = var.bin_dir != "" ? var.bin_dir : "${path.root}/../../.build/release"
  stage = "/tmp/nodeboot-stage"
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
}

source "amazon-ebs" "nodeboot" {
  region        = var.region
  instance_type = var.instance_type
  ami_name      = "${var.ami_name_prefix}-${local.stamp}"
  # Debian's AMIs log in as "admin".
  ssh_username = "admin"

  # Debian 13 (trixie), amd64, from Debian's cloud team account.
  source_ami_filter {
    filters = {
      name                = "debian-13-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"]
    most_recent = true
  }

  # IMDSv2 only on the build instance, as on the nodes (nodeboot and cloud-init use tokens). Packer >= 1.7 (the
  # amazon plugin); Debian 12's packer 1.6.6 predates the block, so scripts/image-test.py validates a copy without it
  # there and says so.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.volume_size_gib
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }

  tags = {
    Name    = "${var.ami_name_prefix}-${local.stamp}"
    project = "nodeboot"
  }
}

build {
  sources = ["source.amazon-ebs.nodeboot"]

  # The staging directory provision.sh reads (the same layout image/build.py fills).
  provisioner "shell" {
    inline = ["mkdir -p ${local.stage}/bin ${local.stage}/units ${local.stage}/cloud.cfg.d ${local.stage}/rootfs"]
  }
  provisioner "file" {
    source      = "${local.bin_dir}/nodeboot"
    destination = "${local.stage}/bin/nodeboot"
  }
  provisioner "file" {
    source      = "${local.bin_dir}/nodeboot-cni"
    destination = "${local.stage}/bin/nodeboot-cni"
  }
  provisioner "file" {
    source      = "${local.repo}/units/"
    destination = "${local.stage}/units"
  }
  provisioner "file" {
    source      = "${local.repo}/cloud-init/nodeboot-config.service"
    destination = "${local.stage}/units/nodeboot-config.service"
  }
  provisioner "file" {
    source      = "${local.repo}/cloud-init/nodeboot-run.service"
    destination = "${local.stage}/units/nodeboot-run.service"
  }
  provisioner "file" {
    source      = "${local.repo}/cloud-init/cloud.cfg.d/"
    destination = "${local.stage}/cloud.cfg.d"
  }
  provisioner "file" {
    source      = "${local.repo}/image/rootfs/"
    destination = "${local.stage}/rootfs"
  }
  provisioner "file" {
    source      = "${local.repo}/compat/bootstrap.sh"
    destination = "${local.stage}/bootstrap.sh"
  }
  provisioner "file" {
    source      = "${local.repo}/image/provision.sh"
    destination = "${local.stage}/provision.sh"
  }
  provisioner "file" {
    source      = "${local.repo}/image/kubelet-stand-in.py"
    destination = "${local.stage}/kubelet-stand-in.py"
  }
  provisioner "file" {
    source      = "${local.repo}/image/packages.txt"
    destination = "${local.stage}/packages.txt"
  }
  provisioner "file" {
    source      = "${local.repo}/image/pause.py"
    destination = "${local.stage}/pause.py"
  }

  # Last: provision.sh ends with the cleanup (machine-id, host keys, the build's authorized_keys, cloud-init state).
  provisioner "shell" {
    inline = ["sudo bash ${local.stage}/provision.sh ${local.stage} --install-packages"]
  }

  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = true
  }
}
