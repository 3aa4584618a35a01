"""Asks a running Rasa server (make run: http://localhost:5005, started with --enable-api) 30 unrelated questions
that are in no training or test file, and prints which ones got a policy intent instead of out_of_scope or the
fallback. A quality probe: it prints figures and asserts nothing.

    .venv/bin/python tools/probe_unrelated.py [--url http://localhost:5005]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

QUESTIONS = [
    "我手机屏幕碎了去哪修",
    "冰箱不制冷了",
    "今天股市涨了吗",
    "帮我查一下明天去太原的大巴",
    "有没有好看的电影推荐",
    "怎么做饺子",
    "感冒了吃什么药",
    "狗狗生病了怎么办",
    "你会下象棋吗",
    "给我唱个歌吧",
    "附近哪有加油站",
    "中国有多少人口",
    "美国总统是谁",
    "iphone多少钱",
    "打麻将怎么算番",
    "怎么减肥最快",
    "今晚吃什么",
    "明天几度",
    "快递到哪了",
    "我想买个电视",
    "帮我充话费",
    "王者荣耀怎么玩",
    "北京天安门几点开门",
    "1加1等于几",
    "写一首诗",
    "哈哈哈你真逗",
    "电动车电瓶多少钱",
    "怎么学英语",
    "微信密码忘了",
    "抖音怎么赚钱",
]
NOT_POLICY = ("out_of_scope", "nlu_fallback", "chitchat", "ask_menu", "greet", "goodbye", "thank")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:5005")
    args = parser.parse_args()
    policy = 0
    for question in QUESTIONS:
        request = urllib.request.Request(
            f"{args.url}/model/parse",
            data=json.dumps({"text": question}).encode(),
            headers={"Content-Type": "application/json"},
        )
        intent = json.load(urllib.request.urlopen(request, timeout=30))["intent"]
        if intent["name"] not in NOT_POLICY:
            policy += 1
            print(f"policy intent for an unrelated question: {question} → {intent['name']} {intent['confidence']:.2f}")
    print(f"{policy} of {len(QUESTIONS)} unrelated questions got a policy intent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
