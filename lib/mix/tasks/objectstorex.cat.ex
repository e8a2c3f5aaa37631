defmodule Mix.Tasks.Objectstorex.Cat do
  @shortdoc "Writes an object's bytes to standard output"

  @moduledoc """
  Streams an object to standard output, byte for byte.

      mix objectstorex.cat URL > local-copy
      mix objectstorex.cat s3://bucket/logs/app.log | grep ERROR

  `URL` is any location `mix objectstorex.cp` accepts. The bytes are written unchanged (binary
  data included, whatever the terminal's encoding) as the object streams, so memory stays
  bounded whatever its size: chunks of 2 MiB, a few at a time (16 on local stores).

  ## Options

    * `--chunk-size SIZE` - bytes per read, e.g. `1MiB` (units as for `mix objectstorex.cp`)

  The exit status is non-zero if the object does not exist or the download fails (in which case
  what was written before the failure stays written). Credentials come from the environment,
  as for `mix objectstorex.cp`.
  """

  use Mix.Task

  alias ObjectStoreX.CLI

  @task "objectstorex.cat"
  @switches [chunk_size: :string]

  @impl Mix.Task
  def run(args) do
    # Runnable again in the same session: `mix do objectstorex.cp a b, objectstorex.cp b c`.
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches)

    loc = CLI.one_location!(@task, argv)

    download_opts =
      case opts[:chunk_size] do
        nil -> []
        text -> [chunk_size: chunk_size!(text)]
      end

    key = CLI.Location.prefix(loc)

    if key == nil or CLI.Location.dir?(loc),
      do: CLI.fail!(@task, "#{CLI.Location.display(loc)} names a prefix, not an object")

    store = CLI.open!(@task, loc)

    try do
      CLI.Format.binary_stdout(fn ->
        ObjectStoreX.Stream.download(store, key, download_opts)
        |> Enum.each(&IO.binwrite(:stdio, &1))
      end)
    rescue
      e in ObjectStoreX.Error -> CLI.error!(@task, "#{CLI.Location.display(loc)}: #{e.message}")
    end
  end

  defp chunk_size!(text) do
    case CLI.parse_size(text) do
      {:ok, size} when size > 0 -> size
      _ -> CLI.fail!(@task, "--chunk-size must be a positive size such as 1MiB, got: #{text}")
    end
  end
end
