"""Checks of the bench driver's pure parts, run by scripts/test.sh:
python3 -m unittest discover -s bench -p 'test_*.py'."""

import unittest
from collections import Counter

import bench


class TurnOrder(unittest.TestCase):
    def test_every_contender_opens_and_follows_each_other_equally(self):
        for n in range(1, 8):
            # A Williams design balances over n rounds, 2n when n is odd.
            rounds = n if n % 2 == 0 else 2 * n
            for shift in range(2 * n):
                orders = [bench.turn_order(n, shift + k) for k in range(rounds)]
                for order in orders:
                    self.assertEqual(sorted(order), list(range(n)), (n, shift, order))
                opens = Counter(order[0] for order in orders)
                self.assertEqual(set(opens.values()), {rounds // n}, (n, shift, opens))
                follows = Counter(pair for order in orders for pair in zip(order, order[1:]))
                pairs = {(a, b) for a in range(n) for b in range(n) if a != b}
                self.assertEqual(set(follows), pairs, (n, shift))
                if pairs:
                    self.assertEqual(set(follows.values()), {rounds // n}, (n, shift, follows))


if __name__ == "__main__":
    unittest.main()
