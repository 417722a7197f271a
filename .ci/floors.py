"""Print the lowest versions setup.cfg allows, as pip pins (``Flask==3.0``...).

Read from ``install_requires`` and the ``crypto`` and ``redis`` extras, so the
floors CI tests are the floors users are promised: one place, no second list.
"""

import configparser
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
config = configparser.ConfigParser()
config.read(os.path.join(HERE, "..", "setup.cfg"))
lines = config["options"]["install_requires"].splitlines()
for extra in ("crypto", "redis"):
    lines += config["options.extras_require"][extra].splitlines()
pins = []
for line in lines:
    found = re.fullmatch(r"\s*([A-Za-z0-9_.-]+(?:\[[a-z,]+\])?)\s*>=\s*([0-9.]+)\s*", line)
    if found:
        pins.append("%s==%s" % found.groups())
    elif line.strip():
        raise SystemExit("setup.cfg: %r has no lower bound of the form name>=version" % line)
print(" ".join(pins))
