# The ObjectStoreX side of `make bench-sync` (bench/sync.sh): one ObjectStoreX.Sync.run/3 from
# SRC to DST, printed as one JSON line on standard output.
#
#   elixir -pa _build/prod/lib/objectstorex/ebin bench/sync_bench.exs SRC DST [NODES]
#
# (bench/sync_bench.py runs it compiled: see the end of the file.)
#
# SRC and DST are `local:DIR` or `s3:ENDPOINT:BUCKET/PREFIX` (credentials from AWS_ACCESS_KEY_ID
# and AWS_SECRET_ACCESS_KEY). NODES (default 1): with more than one, this VM becomes a
# distributed node on 127.0.0.1 and starts NODES - 1 `:peer` nodes there, and the run's
# workers are on all of them (`nodes:`); a local directory is the same path on every node.
# Knobs, from the environment: SYNC_CONCURRENCY (objects in flight on each node, default 32),
# SYNC_PART_MIB (8), SYNC_PART_CONCURRENCY (parts in flight per object, 8), SYNC_BATCH (the
# run's default when unset), SYNC_LISTING (`flat` or `tree`, the run's default when unset).
#
# Output: the run's own duration (no VM start-up), its report's counts, and per node the
# objects and bytes it copied or skipped and its peak RSS (VmHWM), so that the coordination
# cost and each node's share can be read from one run.

# ObjectStoreX emits telemetry only when :telemetry is loaded, and this project does not depend
# on it: a stand-in that counts the run's per-object events by node and action (they are
# emitted on this node, whichever node did the work).
unless Code.ensure_loaded?(:telemetry) do
  defmodule :telemetry do
    def execute([:objectstorex, :sync, :object], m, meta) do
      key = {meta.node, meta.action}
      :ets.update_counter(:sync_bench, key, [{2, 1}, {3, m.bytes}], {key, 0, 0})
      :ok
    end

    def execute(_event, _measurements, _metadata), do: :ok
  end
end

defmodule SyncBench do
  def main([src, dst | rest]) do
    nodes = rest |> List.first("1") |> String.to_integer()
    {:ok, _} = Application.ensure_all_started(:objectstorex)
    # Compiled (see the end of the file), the stand-in is loaded only when asked for, and
    # ObjectStoreX emits only to a loaded :telemetry.
    {:module, :telemetry} = Code.ensure_loaded(:telemetry)
    {source, src_prefix} = open!(src)
    {dest, dst_prefix} = open!(dst)
    peers = if nodes > 1, do: start_peers!(nodes - 1), else: []

    counts = :ets.new(:sync_bench, [:public, :set, :named_table])

    opts =
      [
        prefix: src_prefix,
        dest_prefix: dst_prefix,
        concurrency: env_int("SYNC_CONCURRENCY", 32),
        part_size: env_int("SYNC_PART_MIB", 8) * 1_048_576,
        max_concurrency: env_int("SYNC_PART_CONCURRENCY", 8),
        nodes: [node() | Enum.map(peers, &elem(&1, 1))]
      ] ++
        case System.get_env("SYNC_BATCH") do
          nil -> []
          n -> [batch_size: String.to_integer(n)]
        end ++
        case System.get_env("SYNC_LISTING") do
          nil -> []
          mode -> [listing: String.to_existing_atom(mode)]
        end

    t0 = System.monotonic_time(:microsecond)
    report = ObjectStoreX.Sync.run!(source, dest, opts)
    us = System.monotonic_time(:microsecond) - t0

    if report.failed != [], do: raise("failed: #{inspect(Enum.take(report.failed, 3))}")

    per_node =
      for n <- [node() | Enum.map(peers, &elem(&1, 1))] do
        hwm = n |> :erpc.call(:os, :getpid, []) |> vm_hwm()

        stats =
          for action <- [:copied, :skipped], into: %{} do
            case :ets.lookup(counts, {n, action}) do
              [{_, objects, bytes}] -> {action, %{objects: objects, bytes: bytes}}
              [] -> {action, %{objects: 0, bytes: 0}}
            end
          end

        %{node: to_string(n), vm_hwm_kib: hwm, copied: stats.copied, skipped: stats.skipped}
      end

    Enum.each(peers, fn {pid, _} -> :peer.stop(pid) end)

    IO.puts(
      json(%{
        run_us: us,
        listed: report.listed,
        copied: report.copied,
        skipped: report.skipped,
        bytes: report.bytes,
        nodes: per_node
      })
    )
  end

  # A node's peak RSS: its OS process's VmHWM (every node is on this machine).
  defp vm_hwm(os_pid) do
    "/proc/#{os_pid}/status"
    |> File.read!()
    |> String.split("\n")
    |> Enum.find_value(fn
      "VmHWM:" <> rest ->
        rest |> String.trim() |> String.trim_trailing(" kB") |> String.to_integer()

      _ ->
        nil
    end)
  end

  defp open!("local:" <> dir), do: {ObjectStoreX.new!(:local, root: dir), nil}

  defp open!("s3:" <> rest) do
    [bucket_prefix | endpoint] = rest |> String.split(":") |> Enum.reverse()
    [bucket | prefix] = String.split(bucket_prefix, "/", parts: 2)

    store =
      ObjectStoreX.new!(:s3,
        bucket: bucket,
        endpoint: endpoint |> Enum.reverse() |> Enum.join(":"),
        region: "us-east-1",
        access_key_id: System.fetch_env!("AWS_ACCESS_KEY_ID"),
        secret_access_key: System.fetch_env!("AWS_SECRET_ACCESS_KEY"),
        allow_http: true
      )

    {store, List.first(prefix)}
  end

  # As test/objectstorex/sync_nodes_test.exs does: peers on 127.0.0.1 with this VM's code path.
  defp start_peers!(n) do
    {_, 0} = System.cmd("epmd", ["-daemon"])
    {:ok, _} = Node.start(:"sync_bench_#{System.pid()}@127.0.0.1", :longnames)

    paths =
      Enum.flat_map(:code.get_path(), fn path ->
        if List.starts_with?(path, :code.root_dir()), do: [], else: [~c"-pa", path]
      end)

    for i <- 1..n do
      {:ok, pid, node} =
        :peer.start(%{
          name: :"sync_bench_#{System.pid()}_#{i}",
          host: ~c"127.0.0.1",
          longnames: true,
          args: [~c"-setcookie", Atom.to_charlist(Node.get_cookie()) | paths]
        })

      {pid, node}
    end
  end

  defp env_int(name, default),
    do: name |> System.get_env(to_string(default)) |> String.to_integer()

  # Enough JSON for maps of atoms/strings to integers, strings and lists.
  defp json(map) when is_map(map),
    do:
      "{" <> Enum.map_join(map, ",", fn {k, v} -> json(to_string(k)) <> ":" <> json(v) end) <> "}"

  defp json(list) when is_list(list), do: "[" <> Enum.map_join(list, ",", &json/1) <> "]"
  defp json(s) when is_binary(s), do: inspect(s)
  defp json(n) when is_integer(n), do: Integer.to_string(n)
  defp json(nil), do: "null"
end

# bench/sync_bench.py compiles this file once with elixirc (SYNC_BENCH_COMPILE_ONLY set) and
# runs SyncBench.main/1 from the compiled modules; run as a script, it runs at once.
unless System.get_env("SYNC_BENCH_COMPILE_ONLY"), do: SyncBench.main(System.argv())
