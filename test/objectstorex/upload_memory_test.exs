defmodule ObjectStoreX.UploadMemoryTest do
  # An upload driven from Elixir borrows the caller's binaries without copying them. Once a
  # part is written they are freed on the caller's scheduler, so the binaries alive stay within
  # the upload's bound, `(max_concurrency + 1)` parts plus a chunk, however long parts take.
  # `Stream.put_many/3` borrows its objects the same way and frees each written one on the
  # caller's scheduler at its next call, so it holds at most `max_concurrency` objects, a
  # quarter as many more (rounded up) queued, and the one its source is making.
  # `:erlang.memory(:binary)` counts every process's binaries, so the upload runs in a VM of
  # its own: in the suite's VM, whatever else is alive moved the count by a few MiB.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers, only: [run_child_vm: 2]

  @mib 1_048_576
  @part 8 * @mib

  @tag :tmp_dir
  test "fresh binaries uploaded to a local store stay within the bound", %{tmp_dir: dir} do
    figures =
      measure(dir, """
      source = Stream.repeatedly(fn -> :crypto.strong_rand_bytes(#{@mib}) end) |> Stream.take(160)
      :ok = ObjectStoreX.Stream.upload(source, store, "big.bin", part_size: #{@part}, max_concurrency: 2)
      """)

    assert %{"PEAK" => peak} = figures

    # Three parts and a chunk, with 4 MiB for what the rest of the VM holds meanwhile.
    assert peak <= 3 * @part + @mib + 4 * @mib,
           "binaries peaked #{div(peak, @mib)} MiB above the start"

    assert File.stat!(Path.join(dir, "big.bin")).size == 160 * @mib
  end

  @object 4 * @mib

  @tag :tmp_dir
  test "fresh binaries written by put_many stay within the bound and are all freed", %{
    tmp_dir: dir
  } do
    figures =
      measure(dir, """
      entries = Stream.map(1..48, &{"many/\#{&1}", :crypto.strong_rand_bytes(#{@object})})
      written =
        ObjectStoreX.Stream.put_many(store, entries, max_concurrency: 2)
        |> Enum.count(&match?({_, {:ok, _}}, &1))
      IO.puts("WRITTEN \#{written}")
      """)

    assert %{"PEAK" => peak, "WRITTEN" => 48, "LEFT" => left} = figures

    # Four objects (2 written, 1 queued, 1 being made), with 4 MiB for what the rest of the VM
    # holds meanwhile.
    assert peak <= 4 * @object + 4 * @mib,
           "binaries peaked #{div(peak, @mib)} MiB above the start"

    assert left < @mib, "#{div(left, 1024)} KiB of binaries left after the stream ended"
    assert File.stat!(Path.join([dir, "many", "48"])).size == @object
  end

  # Runs `work` (code given `store`, a local store in `dir`) in a VM of its own while sampling
  # its binaries every millisecond; answers the `NAME number` lines it printed, with `PEAK`,
  # the most binaries above the start, and `LEFT`, those still alive after a collection.
  defp measure(dir, work) do
    code = """
    store = ObjectStoreX.new!(:local, root: System.fetch_env!("UPLOAD_DIR"))
    sample = fn sample, base, peak ->
      receive do
        {:stop, from} -> send(from, {:peak, peak})
      after
        1 -> sample.(sample, base, max(peak, :erlang.memory(:binary) - base))
      end
    end
    :erlang.garbage_collect()
    base = :erlang.memory(:binary)
    sampler = spawn_link(fn -> sample.(sample, base, 0) end)
    #{work}
    send(sampler, {:stop, self()})
    receive do
      {:peak, peak} -> IO.puts("PEAK \#{peak}")
    after
      5_000 -> IO.puts("NO PEAK")
    end
    :erlang.garbage_collect()
    IO.puts("LEFT \#{:erlang.memory(:binary) - base}")
    """

    out = run_child_vm(code, [{"UPLOAD_DIR", dir}])

    for [key, n] <- Regex.scan(~r/^(\w+) (-?\d+)$/m, out, capture: :all_but_first),
        into: %{},
        do: {key, String.to_integer(n)}
  end
end
