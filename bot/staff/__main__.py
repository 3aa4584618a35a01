"""Staff accounts from the command line.

python -m bot.staff create-admin NAME      (or: make staff-admin USER=NAME)   asks for the password twice
python -m bot.staff create-user NAME [--role staff|admin]
echo "$PASSWORD" | python -m bot.staff create-admin NAME --password-stdin
"""

from __future__ import annotations

import argparse
import getpass
import sys

from bot import accounts, db, migrate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.staff", description="安居助手工作台账号")
    parser.add_argument("command", choices=["create-admin", "create-user"])
    parser.add_argument("username")
    parser.add_argument("--role", choices=accounts.ROLES, default="staff")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    role = "admin" if args.command == "create-admin" else args.role
    problem = accounts.username_problem(args.username)
    if problem:  # before asking for the password
        print(f"没有创建：{problem}", file=sys.stderr)
        return 1
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("密码（至少10个字符）：")
        if password != getpass.getpass("再输一遍："):
            print("两次输入的密码不一样。", file=sys.stderr)
            return 1
    migrate.upgrade()
    try:
        with db.session_scope() as session:
            accounts.create_user(session, args.username, password, role)
    except ValueError as e:
        print(f"没有创建：{e}", file=sys.stderr)
        return 1
    print(f"已创建 {role} 账号 {args.username}。登录：/staff/login")
    return 0


if __name__ == "__main__":
    sys.exit(main())
