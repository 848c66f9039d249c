want node nodejs
