#!/bin/sh
# bottlecap's pre-removal step (the .deb's prerm): stop and disable the
# service on removal, not on upgrade. The ledger in /var/lib/bot-bottle
# and the botbottle user stay.
set -eu
if [ "${1:-remove}" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now bottlecap.service || true
fi
