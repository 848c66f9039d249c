want node nodejs
want chromium chromium
