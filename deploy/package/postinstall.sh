#!/bin/sh
# bottlecap's post-install step, run by the .deb (postinst) and by
# `make install` when DESTDIR is empty: the botbottle system user and group,
# and the daemon's home and socket directory, 0750 botbottle:botbottle.
# Idempotent: a second run changes nothing. The service is not started;
# `systemctl enable --now bottlecap` does that.
set -eu

user=botbottle
home=/var/lib/bot-bottle
sysusers=${BOTTLECAP_SYSUSERS:-/usr/lib/sysusers.d/bottlecap.conf}
tmpfiles=${BOTTLECAP_TMPFILES:-/usr/lib/tmpfiles.d/bottlecap.conf}

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers "$sysusers"
elif ! getent passwd "$user" >/dev/null; then
	# No systemd: the same user and group with the shadow tools.
	getent group "$user" >/dev/null || groupadd --system "$user"
	useradd --system --gid "$user" --home-dir "$home" --no-create-home \
		--shell /usr/sbin/nologin --comment "bottlecap daemon" "$user"
fi

if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create "$tmpfiles"
else
	install -d -m 0750 -o "$user" -g "$user" "$home" "$home/run"
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
echo "bottlecap: start the daemon with: systemctl enable --now bottlecap"
