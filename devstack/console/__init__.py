"""The console: a local, read-only web page that shows the saga (`order-saga console`).

Analysts follow executions in the Step Functions console; on the local stack this is where they
look instead: orders, everything each one's saga touched, its executions drawn from the very ASL
files, and what needs a person. It binds to 127.0.0.1 only and serves no script or style from
anywhere but this folder.
"""
