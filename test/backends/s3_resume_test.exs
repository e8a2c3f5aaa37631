defmodule ObjectStoreX.Backends.S3ResumeTest do
  # transfer/5 with `:resume`: the OS process copying a large object is killed mid-upload (no
  # abort can run), and a later transfer of the same source version continues that upload from
  # its last complete part instead of starting over.
  use ExUnit.Case, async: true
  @moduletag backend: :s3
  @moduletag timeout: 180_000

  alias ObjectStoreX.{FaultProxy, TestBackends, TestHelpers}

  @part 5 * 1_048_576
  @part_n ~r/[?&]partNumber=(\d+)/
  @create ~r/[?&]uploads(=|&|$)/

  setup do
    dir = TestBackends.tmp_dir!("resume")
    on_exit(fn -> File.rm_rf(dir) end)
    source = ObjectStoreX.new!(:local, root: dir)
    # Four full parts and a short fifth.
    data = :crypto.strong_rand_bytes(4 * @part + 123_457)
    :ok = ObjectStoreX.put(source, "big.bin", data)
    {:ok, meta} = ObjectStoreX.head(source, "big.bin")
    dest_opts = TestBackends.store_opts(:s3)
    dest = TestBackends.store!(:s3, prefix: dest_opts[:prefix])
    {:ok, dir: dir, source: source, data: data, etag: meta.etag, dest: dest, opts: dest_opts}
  end

  # A child VM copies through a proxy that holds part 3 back; once part 3 has been asked for,
  # parts 1 and 2 are on the server (one part in flight at a time), and the child is killed.
  defp interrupted_copy!(c) do
    stall = {"PUT", ~r/[?&]partNumber=3(&|$)/, {:delay, 120_000}}
    proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [stall])
    opts = Keyword.put(c.opts, :endpoint, FaultProxy.url(proxy))

    code = """
    source = ObjectStoreX.new!(:local, root: #{inspect(c.dir)})
    dest = ObjectStoreX.new!(:s3, #{inspect(opts, limit: :infinity)})
    ObjectStoreX.transfer!(source, "big.bin", dest, "big.bin", part_size: #{@part}, max_concurrency: 1)
    IO.puts("FINISHED")
    """

    kill_at_part_3!(code, proxy)
    assert TestHelpers.s3_uploads_in_progress(c.dest) == 1
  end

  test "an upload left by a killed process is continued from its last complete part", c do
    interrupted_copy!(c)
    proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [])
    dest = TestBackends.store!(:s3, prefix: c.opts[:prefix], endpoint: FaultProxy.url(proxy))

    assert {:ok, summary} =
             ObjectStoreX.transfer(c.source, "big.bin", dest, "big.bin",
               part_size: @part,
               resume: c.etag
             )

    assert summary.bytes == byte_size(c.data)
    assert summary.digest == nil
    assert ObjectStoreX.get!(c.dest, "big.bin") == c.data
    assert TestHelpers.s3_uploads_in_progress(c.dest) == 0

    # Parts 1 and 2 were not sent again, and no new upload was begun.
    sent =
      for {"PUT", target, _} <- FaultProxy.requests(proxy),
          [_, n] <- [Regex.run(@part_n, target)],
          do: n

    assert Enum.sort(sent) == ["3", "4", "5"]
    assert FaultProxy.count(proxy, "POST", @create) == 0
  end

  test "a source changed since the interruption: the old upload is aborted, the copy starts over",
       c do
    interrupted_copy!(c)
    changed = :crypto.strong_rand_bytes(byte_size(c.data))
    :ok = ObjectStoreX.put(c.source, "big.bin", changed)

    assert {:ok, summary} =
             ObjectStoreX.transfer(c.source, "big.bin", c.dest, "big.bin",
               part_size: @part,
               resume: c.etag
             )

    assert is_binary(summary.digest)
    assert ObjectStoreX.get!(c.dest, "big.bin") == changed
    assert TestHelpers.s3_uploads_in_progress(c.dest) == 0
  end

  test "a sync killed mid-upload continues that upload when run again with its checkpoint", c do
    ck_dir = TestBackends.tmp_dir!("resume-ckpt")
    on_exit(fn -> File.rm_rf(ck_dir) end)
    file = Path.join(ck_dir, "sync.ckpt")
    # Once: the second run goes through the same endpoint, which the checkpoint records.
    stall = {"PUT", ~r/[?&]partNumber=3(&|$)/, {:delay, 120_000}, 1}
    proxy = FaultProxy.start!(System.fetch_env!("OBJECTSTOREX_TEST_S3_ENDPOINT"), [stall])
    opts = Keyword.put(c.opts, :endpoint, FaultProxy.url(proxy))

    code = """
    source = ObjectStoreX.new!(:local, root: #{inspect(c.dir)})
    dest = ObjectStoreX.new!(:s3, #{inspect(opts, limit: :infinity)})
    ObjectStoreX.Sync.run!(source, dest,
      checkpoint: #{inspect(file)},
      part_size: #{@part},
      max_concurrency: 1
    )
    IO.puts("FINISHED")
    """

    kill_at_part_3!(code, proxy)
    assert File.read!(file) =~ ~r/\nS big\.bin \S+ [0-9A-F]{8}\n/

    before = length(FaultProxy.requests(proxy))
    dest = TestBackends.store!(:s3, opts)

    assert {:ok, %ObjectStoreX.Sync.Report{copied: 1, failed: []}} =
             ObjectStoreX.Sync.run(c.source, dest,
               checkpoint: file,
               part_size: @part
             )

    assert ObjectStoreX.get!(c.dest, "big.bin") == c.data
    assert TestHelpers.s3_uploads_in_progress(c.dest) == 0

    rerun = Enum.drop(FaultProxy.requests(proxy), before)
    sent = for {"PUT", target, _} <- rerun, [_, n] <- [Regex.run(@part_n, target)], do: n
    assert Enum.sort(sent) == ["3", "4", "5"]
  end

  # Runs `code` in a child VM and kills it (SIGKILL) once part 3 has been asked of the proxy.
  defp kill_at_part_3!(code, proxy) do
    port = TestHelpers.child_vm_port(code)
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    part_3 = ~r/[?&]partNumber=3(&|$)/
    assert TestHelpers.wait_until(fn -> FaultProxy.count(proxy, "PUT", part_3) > 0 end, 600)
    {_, 0} = System.cmd("kill", ["-9", Integer.to_string(os_pid)])
    assert_receive {^port, {:exit_status, status}}, 30_000
    assert status != 0
  end

  test ":resume must be a header-safe string", c do
    assert {:error, %ObjectStoreX.Error{reason: :invalid_argument, message: message}} =
             ObjectStoreX.transfer(c.source, "big.bin", c.dest, "x.bin", resume: 42)

    assert message =~ ":resume"
  end
end
