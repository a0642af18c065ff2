"""``tools/dist_train.sh`` / ``tools/dist_test.sh`` with 2 CPU processes: torchrun + gloo (the config asks nccl)."""
import re


def test_dist_train_and_test_on_cpu(tiny_config, run_tool, tmp_path, free_port):
    proc = run_tool('tools/dist_train.sh', tiny_config, '2', '--work-dir', str(tmp_path), PORT=str(free_port))
    log = proc.stdout + proc.stderr
    assert 'switching the distributed backend from nccl to gloo' in log
    assert re.search(r'Distributed launcher: pytorch\s+Distributed training: True\s+GPU number: 2\b', log), log
    for rank in (0, 1):  # written by each rank's RecordRunHook: "<world_size> <iter>"
        assert (tmp_path / f'after_train_rank{rank}.txt').read_text() == '2 2'
    assert (tmp_path / 'iter_2.pth').is_file()

    proc = run_tool('tools/dist_test.sh', tiny_config, str(tmp_path / 'iter_2.pth'), '2', '--work-dir',
                    str(tmp_path / 'test'), PORT=str(free_port))
    log = proc.stdout + proc.stderr
    # 4 images, batch 2: one iteration per rank when the two ranks share the set (two in a single process)
    assert re.search(r'Iter\(test\) \[1/1\].*coco/bbox_mAP: -?\d+\.\d+', log), log[-3000:]
