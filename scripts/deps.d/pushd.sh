want bc bc
want curl curl
