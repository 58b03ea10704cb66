#!/bin/sh
# install.sh WHEEL_DIR — install meterbox into the root it runs in: a Raspberry Pi, a chroot of a
# Raspberry Pi OS image (see README.md), or the test suite's Debian 12 container.
# WHEEL_DIR holds the meterbox wheel and its dependencies' wheels for this machine's architecture.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
wheels=${1:?usage: install.sh WHEEL_DIR}

# Debian's python3-systemd (sd_notify, journal) and, on a Pi, python3-lgpio come from apt;
# the venv sees them through --system-site-packages.
python3 -m venv --system-site-packages /opt/meterbox
/opt/meterbox/bin/pip install --quiet --no-index --find-links "$wheels" meterbox

install -D -m 0644 "$here/meterbox.service" /etc/systemd/system/meterbox.service
install -D -m 0644 "$here/meterbox.sysusers" /usr/lib/sysusers.d/meterbox.conf
install -D -m 0644 "$here/meterbox.tmpfiles" /usr/lib/tmpfiles.d/meterbox.conf
install -D -m 0644 "$here/journald-meterbox.conf" /etc/systemd/journald.conf.d/meterbox.conf
install -D -m 0644 "$here/60-meterbox-gpio.rules" /etc/udev/rules.d/60-meterbox-gpio.rules
systemd-sysusers /usr/lib/sysusers.d/meterbox.conf
systemd-tmpfiles --create /usr/lib/tmpfiles.d/meterbox.conf
if [ ! -e /etc/meterbox/meterbox.toml ]; then
    install -m 0640 -g meterbox "$(/opt/meterbox/bin/python -c 'import meterbox, pathlib; print(pathlib.Path(meterbox.__file__).parent / "meterbox.example.toml")')" /etc/meterbox/meterbox.toml
fi
systemctl enable meterbox.service
echo "meterbox installed in /opt/meterbox; edit /etc/meterbox/meterbox.toml, then: systemctl start meterbox"
