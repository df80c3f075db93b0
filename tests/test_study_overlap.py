"""What a study overlaps with its solves: bookkeeping of the estimate caches."""
import fpsolve as fp


def test_estimate_caches_are_tracked_per_order_and_boundary():
    """The estimate caches live on the mesh per element and boundary: a P2 problem's
    filled caches do not let a P3 or reflecting problem on the same mesh fork its
    estimates as if they were there (each child would rebuild them)."""
    from fpsolve.study.tasks import _caches_filled
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    mesh = fp.disk_mesh(2.0, 0.5)
    p2, p3 = fp.Problem(L, D, mesh, order=2), fp.Problem(L, D, mesh, order=3)
    refl = fp.Problem(L, D, mesh, order=2, boundary="reflecting")
    assert not _caches_filled(p2)
    assert _caches_filled(p2, True)
    other = fp.diffusion.sgd(L, 0.009, cross_diffusion=False)
    assert _caches_filled(fp.Problem(L, other, mesh, order=2))   # another model, same caches
    assert not _caches_filled(p3) and not _caches_filled(refl)
