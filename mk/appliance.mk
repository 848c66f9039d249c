# The appliance: a bootable disk image and a Debian package (see README.md,
# "The appliance"). Targets: image, image-test, image-test-uefi, deb, deb-test.

APPLIANCE_OUT    := build/appliance
APPLIANCE_IMG    := build/appliance.img
# The config copied into /farmlb/ on the image; by default a one-box demo
# farm made from packaging/appliance/ with certificates made by farmctl ca.
APPLIANCE_CONFIG ?= $(APPLIANCE_OUT)/config
# Whatever daemons exist are put in the image; the init reports a service
# whose binary is missing at GET /status.
APPLIANCE_BINS   := $(filter pushd dnsd farmctl,$(CMDS))
APPLIANCE_LDFLAGS := -s -w -buildid=
KERNEL_MODULE    := github.com/gokrazy/kernel.amd64

.PHONY: image image-test image-test-uefi image-test-farm appliance-bins appliance-config deb deb-test

appliance-bins:
	@mkdir -p $(APPLIANCE_OUT)/bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(APPLIANCE_LDFLAGS)' -o $(APPLIANCE_OUT)/bin/ ./appliance/cmd/farmlb-init $(addprefix ./cmd/,$(APPLIANCE_BINS))
	$(GO) build -trimpath -o $(APPLIANCE_OUT)/ ./appliance/cmd/mkimage

# The demo config: made once and kept, so that rebuilding gives the same
# image. The CA's key stays in $(APPLIANCE_OUT)/ca, off the image.
$(APPLIANCE_OUT)/config/appliance.yaml: packaging/appliance/appliance.yaml packaging/appliance/farm.yaml | appliance-bins
	@mkdir -p $(APPLIANCE_OUT)/config $(APPLIANCE_OUT)/ca
	cp packaging/appliance/appliance.yaml packaging/appliance/farm.yaml $(APPLIANCE_OUT)/config/
	@if $(APPLIANCE_OUT)/bin/farmctl ca --help >/dev/null 2>&1; then \
	  [ -e $(APPLIANCE_OUT)/ca/ca.crt ] || $(APPLIANCE_OUT)/bin/farmctl ca init --farm stream.farmlb.test $(APPLIANCE_OUT)/ca; \
	  for m in serverA ns1; do [ -e $(APPLIANCE_OUT)/ca/$$m.crt ] || $(APPLIANCE_OUT)/bin/farmctl ca issue $(APPLIANCE_OUT)/ca $$m; done; \
	  cp $(APPLIANCE_OUT)/ca/ca.crt $(APPLIANCE_OUT)/ca/serverA.crt $(APPLIANCE_OUT)/ca/serverA.key $(APPLIANCE_OUT)/ca/ns1.crt $(APPLIANCE_OUT)/ca/ns1.key $(APPLIANCE_OUT)/config/; \
	else echo "image: farmctl has no 'ca' command; the demo config has no certificates"; fi

appliance-config: $(if $(filter $(APPLIANCE_OUT)/config,$(APPLIANCE_CONFIG)),$(APPLIANCE_OUT)/config/appliance.yaml)

image: deps appliance-bins appliance-config ## build/appliance.img: boots by BIOS and UEFI; config in /farmlb/ on its FAT partition
	@echo "image: kernel $(KERNEL_MODULE) as pinned in tools/kernel/go.mod"
	cd tools/kernel && $(GO) mod download $(KERNEL_MODULE)
	$(APPLIANCE_OUT)/mkimage initramfs --init $(APPLIANCE_OUT)/bin/farmlb-init $(addprefix --bin $(APPLIANCE_OUT)/bin/,$(APPLIANCE_BINS)) -o $(APPLIANCE_OUT)/initrd.gz
	$(APPLIANCE_OUT)/mkimage disk --kernel "$$(cd tools/kernel && $(GO) list -m -f '{{.Dir}}' $(KERNEL_MODULE))/vmlinuz" \
	  --initrd $(APPLIANCE_OUT)/initrd.gz --config $(APPLIANCE_CONFIG) -o $(APPLIANCE_IMG)
	@ls -l $(APPLIANCE_IMG); du -h --apparent-size $(APPLIANCE_IMG) | sed 's/^/apparent size: /'; du -h $(APPLIANCE_IMG) | sed 's/^/on disk (sparse): /'

# Boots the image under qemu (TCG, user-mode network forwarded to
# 127.0.0.1 only) and checks it from the host; see appliance/imagetest.
image-test: image ## boot build/appliance.img in qemu (BIOS) and check its services from the host
	FARMLB_IMAGE=$(CURDIR)/$(APPLIANCE_IMG) FARMLB_IMAGE_CONFIG=$(abspath $(APPLIANCE_CONFIG)) FARMLB_IMAGE_SERVICES="$(filter pushd dnsd,$(APPLIANCE_BINS))" \
	  $(GO) test -count=1 -v -timeout 10m -run 'TestImage$$' ./appliance/imagetest/

image-test-uefi: image ## the same boot by UEFI (OVMF)
	FARMLB_IMAGE=$(CURDIR)/$(APPLIANCE_IMG) FARMLB_IMAGE_CONFIG=$(abspath $(APPLIANCE_CONFIG)) FARMLB_IMAGE_SERVICES="$(filter pushd dnsd,$(APPLIANCE_BINS))" FARMLB_IMAGE_FIRMWARE=uefi \
	  $(GO) test -count=1 -v -timeout 10m -run 'TestImage$$' ./appliance/imagetest/

# The Debian package: the daemons that exist, their systemd units, man
# pages made from their --help by help2man, and /etc/farmlb/farm.yaml.
DEB_OUT     := build/deb
DEB_BINS    := $(filter pushd dnsd farmctl,$(CMDS))
DEB_VERSION ?= $(shell git log -1 --format=0.1.0~git%cd.%h --date=format:%Y%m%d 2>/dev/null || echo 0.1.0)
DEB_FILE    := build/farmlb_$(DEB_VERSION)_amd64.deb
DEB_EPOCH   := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
desc_pushd   := farmlb push server: SSE streams, publish, the farm list
desc_dnsd    := farmlb authoritative DNS server for the service zone
desc_farmctl := inspect and drive a farmlb farm

deb: deps ## build/farmlb_VERSION_amd64.deb with the daemons, systemd units, man pages, /etc/farmlb/farm.yaml
	@rm -rf $(DEB_OUT) && mkdir -p $(DEB_OUT)/bin $(DEB_OUT)/man
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(APPLIANCE_LDFLAGS)' -o $(DEB_OUT)/bin/ $(addprefix ./cmd/,$(DEB_BINS))
	cd tools/nfpm && $(GO) build -o $(CURDIR)/$(DEB_OUT)/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	@cp packaging/deb/nfpm.yaml $(DEB_OUT)/nfpm.yaml
	@set -e; for b in $(DEB_BINS); do \
	  SOURCE_DATE_EPOCH=$(DEB_EPOCH) help2man --no-info --no-discard-stderr --version-string=$(DEB_VERSION) --name="$$(case $$b in pushd) echo '$(desc_pushd)';; dnsd) echo '$(desc_dnsd)';; *) echo '$(desc_farmctl)';; esac)" $(DEB_OUT)/bin/$$b | gzip -9n > $(DEB_OUT)/man/$$b.1.gz; \
	  printf '  - src: %s\n    dst: /usr/bin/%s\n    file_info: {mode: 0755}\n' $(DEB_OUT)/bin/$$b $$b >> $(DEB_OUT)/nfpm.yaml; \
	  printf '  - src: %s\n    dst: /usr/share/man/man1/%s.1.gz\n    file_info: {mode: 0644}\n' $(DEB_OUT)/man/$$b.1.gz $$b >> $(DEB_OUT)/nfpm.yaml; \
	  if [ -e packaging/deb/farmlb-$$b@.service ]; then \
	    printf '  - src: packaging/deb/farmlb-%s@.service\n    dst: /usr/lib/systemd/system/farmlb-%s@.service\n    file_info: {mode: 0644}\n' $$b $$b >> $(DEB_OUT)/nfpm.yaml; fi; \
	done
	@rm -f build/farmlb_*_amd64.deb
	SOURCE_DATE_EPOCH=$(DEB_EPOCH) VERSION=$(DEB_VERSION) $(DEB_OUT)/nfpm package --config $(DEB_OUT)/nfpm.yaml --packager deb --target $(DEB_FILE)
	@dpkg-deb --info $(DEB_FILE) | sed -n '/Package/,$$p'

deb-test: deb ## check the .deb's contents and metadata with dpkg-deb
	FARMLB_DEB=$(CURDIR)/$(DEB_FILE) FARMLB_DEB_BINS="$(DEB_BINS)" $(GO) test -count=1 -v -run 'TestDeb$$' ./appliance/debtest/

# Two appliances forming one farm over a qemu socket network.
image-test-farm: image ## boot two appliances that form one farm; check mesh, DNS and replication from the host
	FARMLB_IMAGE_KERNEL="$$(cd tools/kernel && $(GO) list -m -f '{{.Dir}}' $(KERNEL_MODULE))/vmlinuz" FARMLB_IMAGE_INITRD=$(CURDIR)/$(APPLIANCE_OUT)/initrd.gz \
	  FARMLB_IMAGE_SERVICES="$(filter pushd dnsd,$(APPLIANCE_BINS))" \
	  $(GO) test -count=1 -v -timeout 15m -run 'TestFarmOfTwo$$' ./appliance/imagetest/
