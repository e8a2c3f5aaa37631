defmodule ObjectStoreX.MallocTest do
  # The VM's malloc settings freeze glibc's mmap threshold at 128 KiB, so that every large body
  # buffer would be a fresh mapping, faulted in page by page. The library raises the threshold
  # when it loads (OBJECTSTOREX_MALLOC_MMAP_THRESHOLD sets it, 0 leaves malloc alone): checked
  # by what it costs, the minor page faults of reading one 1 MiB object again and again, in a
  # child VM, since the setting is read once at load and is process-wide.
  use ExUnit.Case, async: true

  import ObjectStoreX.TestHelpers

  @gets 40
  @mib 1_048_576

  @moduletag :tmp_dir

  defp child(root, env, run \\ &run_child_vm/2) do
    code = """
    {:ok, store} = ObjectStoreX.new(:local, root: #{inspect(root)})
    :ok = ObjectStoreX.put(store, "big", :binary.copy(<<7>>, #{@mib}))
    faults = fn ->
      [_, rest] = String.split(File.read!("/proc/self/stat"), ") ", parts: 2)
      rest |> String.split() |> Enum.at(7) |> String.to_integer()
    end
    get = fn ->
      {:ok, body, _} = ObjectStoreX.get(store, "big")
      #{@mib} = byte_size(body)
      # Frees the body's buffer now rather than at some later collection.
      :erlang.garbage_collect()
    end
    # Warm: the pool thread that reads, and the memory malloc keeps, are in place.
    for _ <- 1..10, do: get.()
    before = faults.()
    for _ <- 1..#{@gets}, do: get.()
    IO.puts("FAULTS \#{faults.() - before}")
    IO.puts("MALLOC \#{inspect(ObjectStoreX.Native.native_malloc())}")
    """

    out = run.(code, env)

    [faults] = for "FAULTS " <> n <- String.split(out, "\n"), do: String.to_integer(n)
    [malloc] = for "MALLOC " <> t <- String.split(out, "\n"), do: t
    {faults, malloc, out}
  end

  test "large body buffers are reused by default, and OBJECTSTOREX_MALLOC_MMAP_THRESHOLD=0 leaves malloc alone",
       %{tmp_dir: dir} do
    {tuned, malloc, _} = child(dir, [{"OBJECTSTOREX_MALLOC_MMAP_THRESHOLD", nil}])
    assert malloc == "4194304"
    {untouched, malloc, _} = child(dir, [{"OBJECTSTOREX_MALLOC_MMAP_THRESHOLD", "0"}])
    assert malloc == "nil"

    # A fresh mapping per body faults in its 256 pages; a reused buffer faults in none.
    pages = div(@mib, 4096)
    assert untouched >= @gets * pages / 2, "untouched malloc: #{untouched} faults"
    assert tuned < @gets * pages / 3, "tuned malloc: #{tuned} faults"
  end

  test "a value that is not a byte count is refused with a warning, and malloc left alone",
       %{tmp_dir: dir} do
    for bad <- ["fast", "-1", "33554433"] do
      {faults, malloc, out} = child(dir, [{"OBJECTSTOREX_MALLOC_MMAP_THRESHOLD", bad}])
      assert malloc == "nil"
      assert out =~ "[warning] OBJECTSTOREX_MALLOC_MMAP_THRESHOLD must be a number of bytes"
      assert out =~ inspect(bad)
      assert faults >= @gets * div(@mib, 4096) / 2
    end
  end

  test "a value that is not UTF-8 is refused with a warning, not taken for unset",
       %{tmp_dir: dir} do
    # A byte count followed by a byte no UTF-8 text holds, which an Elixir env list cannot
    # carry: bash puts it in the child's environment.
    script = ~S|OBJECTSTOREX_MALLOC_MMAP_THRESHOLD="$(printf '4194304\377')" exec elixir "$@"|
    run = &run_child_vm(&1, &2, shell: script)

    {_faults, malloc, out} = child(dir, [], run)
    # Unset, the default would be set: "4194304".
    assert malloc == "nil"
    assert out =~ "[warning] OBJECTSTOREX_MALLOC_MMAP_THRESHOLD must be a number of bytes"
    assert out =~ ~s(got "4194304\u{FFFD}")
  end
end
