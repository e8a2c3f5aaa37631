defmodule ObjectStoreX.LocalListingTest do
  # A local store lists its directory tree itself (one stat per file, relative to its
  # directory); what it lists must stay what the rest of the store reads and writes: regular
  # files, links followed, nothing half-written.
  use ExUnit.Case, async: true

  alias ObjectStoreX.Error

  import ObjectStoreX.TestHelpers, only: [drain_mailbox: 1]

  setup %{tmp_dir: dir} = context do
    if context[:sweep], do: :ok, else: tree(dir)
  end

  defp tree(dir) do
    store = ObjectStoreX.new!(:local, root: dir)

    for {path, size} <- [{"a/one", 1}, {"a/b/two", 2}, {"a/b/c/three", 3}, {"z", 4}] do
      :ok = ObjectStoreX.put(store, path, :binary.copy("x", size))
    end

    File.write!(Path.join(dir, "a/half#3"), "being written")
    File.write!(Path.join(dir, "a/kept#x"), "a name like any other")
    {_, 0} = System.cmd("mkfifo", [Path.join(dir, "fifo")])
    File.ln_s!(Path.join(dir, "a/one"), Path.join(dir, "link"))
    File.ln_s!(Path.join(dir, "a/b"), Path.join(dir, "dirlink"))
    File.ln_s!(Path.join(dir, "nowhere"), Path.join(dir, "broken"))
    File.mkdir_p!(Path.join(dir, "empty/dir"))
    %{store: store}
  end

  @expected %{
    "a/one" => 1,
    "a/b/two" => 2,
    "a/b/c/three" => 3,
    "z" => 4,
    "a/kept#x" => 21,
    "link" => 1,
    "dirlink/two" => 2,
    "dirlink/c/three" => 3
  }

  @tag :tmp_dir
  test "lists regular files and followed links, not FIFOs, broken links or writes in progress",
       %{store: store} do
    listed = ObjectStoreX.Stream.list_stream(store, page_size: 3) |> Enum.to_list()
    assert Map.new(listed, &{&1.location, &1.size}) == @expected
    assert length(listed) == map_size(@expected)

    for meta <- listed do
      assert {:ok, head} = ObjectStoreX.head(store, meta.location)

      assert {head.size, head.etag, head.last_modified} ==
               {meta.size, meta.etag, meta.last_modified}
    end

    assert {:ok, listed_again} = ObjectStoreX.list(store)
    assert Enum.sort(listed_again) == Enum.sort(listed)
  end

  @tag :tmp_dir
  test "a prefix lists its directory; an offset keeps what sorts after it", %{store: store} do
    under_a = for {"a/" <> _ = path, size} <- @expected, into: %{}, do: {path, size}
    listed = ObjectStoreX.Stream.list_stream(store, prefix: "a") |> Enum.to_list()
    assert Map.new(listed, &{&1.location, &1.size}) == under_a

    for offset <- ["a/b", "a/b/two", "dirlink", "link", "zz"] do
      after_it = for {path, _} <- @expected, path > offset, into: MapSet.new(), do: path
      assert {:ok, metas} = ObjectStoreX.list(store, offset: offset)
      assert MapSet.new(metas, & &1.location) == after_it, "offset #{offset}"
    end

    assert [] == ObjectStoreX.Stream.list_stream(store, prefix: "missing") |> Enum.to_list()
    assert [] == ObjectStoreX.Stream.list_stream(store, prefix: "z") |> Enum.to_list()
  end

  @tag :tmp_dir
  test "one level lists the files the walk lists there, and its directories", %{store: store} do
    listed = ObjectStoreX.Stream.list_stream(store) |> Enum.to_list()

    levels = %{
      nil => ["a", "dirlink", "empty"],
      "a" => ["a/b"],
      "a/b" => ["a/b/c"],
      "dirlink" => ["dirlink/c"],
      "empty" => ["empty/dir"],
      "empty/dir" => [],
      "missing" => [],
      "z" => [],
      "fifo" => []
    }

    for {prefix, dirs} <- levels do
      opts = if prefix, do: [prefix: prefix], else: []
      assert {:ok, level} = ObjectStoreX.list_with_delimiter(store, opts)
      assert level.common_prefixes == dirs, "prefix #{inspect(prefix)}"
      here = if prefix, do: prefix <> "/", else: ""

      direct =
        for meta <- listed,
            String.starts_with?(meta.location, here),
            not String.contains?(String.replace_prefix(meta.location, here, ""), "/"),
            do: meta

      # The same Meta as the walk's: size, ETag and time agree with a HEAD.
      assert Enum.sort(level.objects) == Enum.sort(direct), "prefix #{inspect(prefix)}"
    end

    assert {:ok, top} = ObjectStoreX.list_with_delimiter(store)
    assert Enum.sort(Enum.map(top.objects, & &1.location)) == ["link", "z"]

    assert {:ok, after_d} = ObjectStoreX.list_with_delimiter(store, offset: "d")
    assert after_d.common_prefixes == ["dirlink", "empty"]
    assert Enum.sort(Enum.map(after_d.objects, & &1.location)) == ["link", "z"]
  end

  @tag :tmp_dir
  test "a file name that is no valid path ends the listing with an error", %{
    store: store,
    tmp_dir: dir
  } do
    File.write!(Path.join(dir, "a/bad\nname"), "x")
    assert {:error, %Error{reason: :invalid_path}} = ObjectStoreX.list(store)
    error = catch_error(ObjectStoreX.Stream.list_stream(store) |> Enum.to_list())
    assert %Error{reason: :invalid_path} = error
    # Another directory still lists; one level lists where the name is not.
    assert {:ok, metas} = ObjectStoreX.list(store, prefix: "a/b")
    assert Enum.sort(Enum.map(metas, & &1.location)) == ["a/b/c/three", "a/b/two"]

    assert {:error, %Error{reason: :invalid_path}} =
             ObjectStoreX.list_with_delimiter(store, prefix: "a")

    assert {:ok, %{common_prefixes: ["a", "dirlink", "empty"]}} =
             ObjectStoreX.list_with_delimiter(store)
  end

  # Random trees (deep and wide, more files than one native batch of 256 and one page) listed
  # with random pages, prefetch, prefixes, offsets and early halts: exactly the files expected,
  # and nothing left in the mailbox.
  #
  #   OBJECTSTOREX_SWEEP_SEED   replay a seed (printed with every failure)
  @tag :tmp_dir
  @tag :sweep
  test "random trees list exactly, whatever the pages, prefix, offset or halt", %{tmp_dir: dir} do
    seed =
      String.to_integer(System.get_env("OBJECTSTOREX_SWEEP_SEED", "#{:rand.uniform(99_999)}"))

    :rand.seed(:exsss, {seed, seed, seed})

    failures = for round <- 1..4, failure <- sweep(Path.join(dir, "r#{round}")), do: failure

    assert failures == [],
           "seed #{seed} (OBJECTSTOREX_SWEEP_SEED=#{seed} to replay):\n" <>
             Enum.join(failures, "\n")
  end

  defp sweep(root) do
    dirs = ["", "d", "d/e", "d/e/f", "g", "h/i/j/k", "wide"]
    count = Enum.random([0, 1, 255, 256, 257, 700])

    files =
      for i <- 1..count//1, into: MapSet.new() do
        dir = Enum.random(dirs)
        Path.join(dir, "f#{i}") |> String.trim_leading("/")
      end

    for file <- files do
      path = Path.join(root, file)
      File.mkdir_p!(Path.dirname(path))
      File.write!(path, "")
    end

    # Files being written and empty directories list as nothing.
    File.mkdir_p!(Path.join(root, "d/e/empty"))
    File.write!(Path.join(root, "d/e/partial#7"), "")
    store = ObjectStoreX.new!(:local, root: root)
    cases = for _ <- 1..15, failure = sweep_case(store, files), do: failure
    cases ++ for dir <- dirs, failure = level_case(store, files, dir), do: failure
  end

  # One level of `dir`: its files, and its directories as common prefixes.
  defp level_case(store, files, dir) do
    here = if dir == "", do: "", else: dir <> "/"

    # The empty directory "d/e/empty" is a directory all the same (a stand-in file below it
    # makes its parents' prefixes); the file being written, "d/e/partial#7", is no object.
    {objects, prefixes} =
      for path <- MapSet.put(files, "d/e/empty/-"),
          String.starts_with?(path, here),
          reduce: {MapSet.new(), MapSet.new()} do
        {objects, prefixes} ->
          case String.split(String.replace_prefix(path, here, ""), "/", parts: 2) do
            [_name] -> {MapSet.put(objects, path), prefixes}
            [sub, _] -> {objects, MapSet.put(prefixes, here <> sub)}
          end
      end

    opts = if dir == "", do: [], else: [prefix: dir]

    case ObjectStoreX.list_with_delimiter(store, opts) do
      {:ok, level} ->
        got_objects = MapSet.new(level.objects, & &1.location)

        if got_objects == objects and level.common_prefixes == Enum.sort(prefixes) and
             length(level.objects) == MapSet.size(objects),
           do: nil,
           else: "level #{inspect(dir)}: #{inspect(level)} differs"

      {:error, error} ->
        "level #{inspect(dir)}: #{inspect(error)}"
    end
  end

  defp sweep_case(store, files) do
    prefix = Enum.random([nil, "d", "d/e", "h", "wide", "missing"])
    listed_paths = Enum.to_list(files)
    offset = Enum.random([nil, "d/e", "g", "zzz"] ++ Enum.take_random(listed_paths, 2))
    halt = Enum.random([:all, :all, {:take, Enum.random(0..300)}])
    opts = [page_size: Enum.random([1, 7, 256, 1000]), prefetch: Enum.random(1..4)]
    opts = if prefix, do: [{:prefix, prefix} | opts], else: opts
    opts = if offset, do: [{:offset, offset} | opts], else: opts

    expected =
      for path <- files,
          prefix == nil or String.starts_with?(path, prefix <> "/"),
          offset == nil or path > offset,
          into: MapSet.new(),
          do: path

    stream = ObjectStoreX.Stream.list_stream(store, opts) |> Stream.map(& &1.location)

    got =
      case halt do
        :all -> Enum.to_list(stream)
        {:take, n} -> Enum.take(stream, n)
      end

    left = drain_mailbox(20)

    cond do
      left != [] ->
        "#{inspect(opts)} #{inspect(halt)}: left in the mailbox #{inspect(left)}"

      length(got) != length(Enum.uniq(got)) ->
        "#{inspect(opts)} #{inspect(halt)}: a path listed twice"

      halt == :all and MapSet.new(got) != expected ->
        "#{inspect(opts)}: #{length(got)} listed, #{MapSet.size(expected)} expected"

      match?({:take, _}, halt) and
          (length(got) != min(elem(halt, 1), MapSet.size(expected)) or
             not MapSet.subset?(MapSet.new(got), expected)) ->
        "#{inspect(opts)} #{inspect(halt)}: #{length(got)} listed, not a part of those expected"

      true ->
        nil
    end
  end
end
