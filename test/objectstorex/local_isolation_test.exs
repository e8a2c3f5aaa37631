defmodule ObjectStoreX.LocalIsolationTest do
  # A local root that holds a FIFO: opening one for reading blocks until a writer comes, and
  # each such open used to pin a thread of the blocking pool that the memory store and DNS
  # lookups share, for good. Not async: it means to fill that pool.
  use ExUnit.Case, async: false

  import ObjectStoreX.TestHelpers, only: [run_child_vm: 2]

  alias ObjectStoreX.Error

  @mib 1_048_576

  @tag :tmp_dir
  test "a FIFO is never opened: reads fail at once and other work goes on", %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    {_, 0} = System.cmd("mkfifo", [Path.join(dir, "fifo")])
    dest = ObjectStoreX.new!(:memory)

    # More reads than the pool has threads (four per core).
    reads = 4 * :erlang.system_info(:logical_processors_available) + 4

    results =
      1..reads
      |> Enum.map(fn i ->
        Task.async(fn ->
          case rem(i, 3) do
            0 ->
              ObjectStoreX.get(store, "fifo", timeout: 2_000)

            1 ->
              ObjectStoreX.transfer(store, "fifo", dest, "copy", timeout: 2_000)

            2 ->
              ObjectStoreX.download_file(store, "fifo", Path.join(dir, "out#{i}"), timeout: 2_000)
          end
        end)
      end)
      |> Task.await_many(10_000)

    for result <- results do
      assert {:error, %Error{reason: reason, message: message}} = result
      refute reason == :timeout, "a read waited on the FIFO: #{message}"
    end

    error =
      catch_error(ObjectStoreX.Stream.download(store, "fifo", timeout: 2_000) |> Enum.to_list())

    assert %Error{} = error
    refute error.reason == :timeout

    # The memory store joins an upload's chunks on the blocking pool: it still can.
    chunks = Stream.repeatedly(fn -> :binary.copy("x", @mib) end) |> Stream.take(48)
    assert :ok = ObjectStoreX.Stream.upload(chunks, dest, "big", timeout: 10_000)
    assert {:ok, %{size: 50_331_648}} = ObjectStoreX.head(dest, "big")
  end

  @tag :tmp_dir
  test "local files still read and write through the pool of their own", %{tmp_dir: dir} do
    store = ObjectStoreX.new!(:local, root: dir)
    data = :crypto.strong_rand_bytes(3 * @mib + 17)
    :ok = ObjectStoreX.put(store, "a/b.bin", data)
    assert {:ok, ^data, _} = ObjectStoreX.get(store, "a/b.bin")
    assert {:ok, [<<_::binary-size(10)>>]} = ObjectStoreX.get_ranges(store, "a/b.bin", [{5, 14}])

    assert IO.iodata_to_binary(Enum.to_list(ObjectStoreX.Stream.download(store, "a/b.bin"))) ==
             data

    assert {:ok, [%{location: "a/b.bin"}]} = ObjectStoreX.list(store)
    target = Path.join(dir, "copy.bin")
    assert {:ok, _} = ObjectStoreX.download_file(store, "a/b.bin", target, chunk_size: @mib)
    assert File.read!(target) == data
    assert {:ok, 1, []} = ObjectStoreX.delete_many(store, ["a/b.bin"])
  end

  # Copies out of the page cache keep a core busy each: threads beyond one per core only wait
  # behind one another and the VM's schedulers (README, "How it works"). In a child VM, since
  # the pool's size is read once, when the library loads.
  @tag :tmp_dir
  test "many local downloads use at most one pool thread per core; OBJECTSTOREX_LOCAL_THREADS sets another size, nonsense keeps the default with a warning",
       %{tmp_dir: dir} do
    # 8 downloads at once, each reading ahead: more reads at once than cores.
    code = """
    store = ObjectStoreX.new!(:local, root: #{inspect(dir)})
    :ok = ObjectStoreX.put(store, "big.bin", :binary.copy(<<1>>, 8 * #{@mib}))
    1..8
    |> Task.async_stream(fn _ -> ObjectStoreX.Stream.download(store, "big.bin") |> Stream.run() end)
    |> Stream.run()
    # The pool's runtime thread plus its blocking threads, which outlive their reads by seconds.
    pool = for t <- File.ls!("/proc/self/task"),
               File.read("/proc/self/task/\#{t}/comm") == {:ok, "objectstorex-fs\\n"}, do: t
    IO.puts("POOL \#{length(pool)}")
    """

    pool = fn env ->
      out = run_child_vm(code, [{"OBJECTSTOREX_LOCAL_THREADS", env}])
      [n] = for "POOL " <> n <- String.split(out, "\n"), do: String.to_integer(n)
      {n, out}
    end

    cores = max(2, :erlang.system_info(:logical_processors_available))
    # Its runtime's thread and one blocking thread; by default one per core.
    assert {2, out} = pool.("1")
    refute out =~ "[warning]"
    assert {default, _} = pool.(nil)
    assert default in 3..(cores + 1), "#{default} local pool threads for #{cores} cores"

    assert {^default, out} = pool.("0")

    assert out =~
             ~s([warning] OBJECTSTOREX_LOCAL_THREADS must be a whole number from 1 to 1024, got "0": #{cores} is used)
  end
end
