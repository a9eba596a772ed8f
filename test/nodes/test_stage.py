"""The stage nodes' shared parts without middleware: stamp matching and the reported figures."""

from vidplan_ros.nodes.stage import StageStats, StampMatcher
from vidplan_ros.transport.log import NodeLogger


class FakeNode:
    def __init__(self):
        self.t_ns = 0
        self.logger = NodeLogger('fake')

    def now_ns(self):
        return self.t_ns


def test_matching_by_exact_stamp_keeps_the_newest_complete_set():
    stats = StageStats(FakeNode())
    m = StampMatcher(('latent', 'plan'), stats, kept=3)
    m.put('latent', 10, 'z10')
    m.put('latent', 20, 'z20')
    m.put('plan', 11, 'p11')                      # no latent with stamp 11
    assert m.take() is None
    m.put('plan', 10, 'p10')
    m.put('plan', 20, 'p20')                      # completes while 10 is untaken: 20 wins
    assert m.take() == (20, {'latent': 'z20', 'plan': 'p20'})
    assert m.take() is None and stats.skips == {'superseded': 1}
    m.put('latent', 15, 'z15')                    # older than the set used
    assert stats.drops == {'out_of_order': 1}
    for s in (30, 31, 32, 33):                    # plans whose latents never come
        m.put('plan', s, f'p{s}')
    assert stats.drops['unpaired'] == 1 and sorted(m.pending['plan']) == [31, 32, 33]
    for s in (40, 41, 42, 43):                    # latents the planner skipped: not a fault
        m.put('latent', s, f'z{s}')
    assert stats.skips['unpaired_latent'] == 1


def test_figures_p50_rates_and_drops_since_the_last_report():
    node = FakeNode()
    stats = StageStats(node, rate_window_s=1.0)
    for ms in (10, 30, 20):
        stats.latency('ground', ms * 1e-3)
    for t_ms in (100, 950, 1900):               # 2 in the last second
        node.t_ns = t_ms * 1_000_000
        stats.event('plan')
    stats.drop('stale', 'old')
    stats.drop('stale', 'old again')              # counted, its warning throttled
    values = stats.values(('ground',), ('plan',))
    assert values['ground_ms_p50'] == '20.00' and values['plan_rate_hz'] == '2.00'
    assert values['dropped_stale'] == 2 and values['last_error'] == 'stale: old again'
    assert stats.new_drops() == 2 and stats.new_drops() == 0
